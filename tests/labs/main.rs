//! Every real lab of the book (`book/src/lab-*.md`, `scripts/labs/`) run as written at a
//! reduced size, in real mode; each module checks the observations its chapter tells students
//! to expect. One lab runs at a time, as a student's would: the fairness lab's CPU-bound jobs
//! would otherwise be part of every other lab's measurement.

#[path = "../common/mod.rs"]
mod common;

use std::sync::{Mutex, MutexGuard};

mod bufferbloat;
mod gossip;
mod partition;
mod seed;
mod swarm;
mod tcp;

static ONE_LAB: Mutex<()> = Mutex::new(());

/// Held for the whole of a lab's test; a lab that failed leaves it usable for the next.
fn one_lab_at_a_time() -> MutexGuard<'static, ()> {
    ONE_LAB.lock().unwrap_or_else(|e| e.into_inner())
}
