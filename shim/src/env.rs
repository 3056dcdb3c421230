//! The environment contract between p2plab's process spawner and the shim: the one place
//! that names the variables a spawned program receives.
//!
//! Plain constants with no dependency, so the spawner includes this very file as a module
//! (`src/worker/shim.rs`: `#[path = "../../shim/src/env.rs"] pub mod contract;`) instead of
//! linking the shim crate, which would interpose p2plab's own sockets.

use core::ffi::CStr;

/// The node's IPv4 address, dotted quad (`10.0.0.7`). Read once by the shim when it loads:
/// every IPv4 socket of the process is bound to it. Unset, unparsable or `0.0.0.0`: the shim
/// passes every call through unchanged.
pub const BINDIP: &str = "BINDIP";

/// [`BINDIP`] as a C string, for `getenv(3)` inside the shim.
pub const BINDIP_C: &CStr = c"BINDIP";

/// The node's address again, for the program and its scripts (`--announce $P2PLAB_IP`). The
/// shim does not read it.
pub const P2PLAB_IP: &str = "P2PLAB_IP";

/// The node's id in the experiment, decimal (`node.id` in a script). The shim does not read it.
pub const P2PLAB_NODE: &str = "P2PLAB_NODE";

/// The dynamic loader's variable: the absolute path of the shim library. It stays in the
/// environment, so children forked and exec'd by the program load the shim as well.
pub const LD_PRELOAD: &str = "LD_PRELOAD";

/// The file `cargo build` makes of the shim, in `target/<profile>/` next to the p2plab binary.
pub const SHIM_FILE: &str = "libp2plab_shim.so";

const fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// The two spellings of BINDIP cannot drift apart.
const _: () = assert!(same_bytes(BINDIP.as_bytes(), BINDIP_C.to_bytes()));
