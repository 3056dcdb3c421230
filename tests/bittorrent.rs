//! A real BitTorrent swarm (needs root, opentracker and ctorrent): every peer finishes with a
//! correct file, and the tracker saw each peer at its own node address.

mod common;

use common::can_run_real_mode_with;
use common::swarm::{self, check_swarm};
use p2plab::run::{self, RunConfig};

#[test]
fn a_swarm_of_ten_peers_completes() {
    if !can_run_real_mode_with("a_swarm_of_ten_peers_completes", swarm::PROGRAMS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // opentracker reads its whitelist as user nobody.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = RunConfig::new("scripts/bittorrent.rhai");
    cfg.out = Some(dir.path().join("out"));
    cfg.seed = Some(1);
    cfg.params.insert("peers".into(), "10".into());
    cfg.params.insert("size_kb".into(), "1024".into());
    if let Err(e) = run::real(cfg) {
        panic!("swarm run failed: {e}");
    }
    check_swarm(&dir.path().join("out"), 10);
}
