//! The data plane: how packets between virtual nodes are delayed, queued and dropped. The link
//! model (`model`) is pure logic; `forwarder` runs it on a dedicated thread between the lab's
//! TUN device (`tun`) and the kernel, on the lab's monotonic clock (`clock`).

pub mod encap;
pub mod forwarder;
pub mod model;
pub mod packet;
pub mod tun;

pub use forwarder::{Command, Dataplane, ForwarderStats, RemoteLinks};
pub use tun::TunDevice;
