//! The data plane: how packets between virtual nodes are delayed, queued and dropped. The link
//! model (`model`) is pure logic; `forwarder` runs it on a dedicated thread between the lab's
//! TUN device (`tun`) and the kernel, on the lab's monotonic clock (`clock`). Packets for
//! other workers travel in authenticated datagrams (`encap`); `peers` keeps the keys,
//! counters and replay windows (`replay`) of the other workers. `lateness` is the
//! histogram of how late the forwarder wrote what the model delivered; `capture` writes the
//! packet captures of nodes; `segments` cuts TCP super-packets where the model charges them
//! segment by segment.

pub mod capture;
pub mod encap;
pub mod forwarder;
mod lateness;
pub mod model;
pub mod packet;
mod peers;
mod replay;
pub mod segments;
pub mod tun;

pub use forwarder::{Command, Dataplane, ForwarderStats, RemoteLinks};
pub use tun::TunDevice;
