//! The data plane: how packets between virtual nodes are delayed, queued and dropped. For now
//! the link model itself (`model`), pure logic with the clock and RNG passed in; the TUN device
//! and the forwarding thread that drive it come with the lab namespace.

pub mod model;
