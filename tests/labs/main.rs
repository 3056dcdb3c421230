//! Every real lab of the book (`book/src/lab-*.md`, `scripts/labs/`) run as written at a
//! reduced size, in real mode; each module checks the observations its chapter tells students
//! to expect.

#[path = "../common/mod.rs"]
mod common;

mod bufferbloat;
mod gossip;
mod partition;
mod seed;
mod swarm;
mod tcp;
