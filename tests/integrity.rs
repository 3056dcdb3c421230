//! A man in the middle between a controller and a real worker (needs root, as `p2plab worker`
//! does). After a rightful handshake, a relay flips one bit of, replays a record before,
//! drops, or injects a forged `Spawn` before the record that carries the script's `spawn`. In
//! each case the worker ends the session and runs nothing (its marker file never appears),
//! removes its lab, and the controller stops with exit code 3 and a message naming the
//! integrity failure. A bit flipped in the worker's reply is caught by the controller alike.
//! None of them hangs.

mod common;

#[path = "common/daemon.rs"]
mod daemon;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::can_run_real_mode_with;
use daemon::Daemon;
use p2plab::proto::messages::{Request, ToWorker};
use p2plab::proto::record::TAG_LEN;
use p2plab::proto::wire::WireAction;

/// Frames of the handshake sent in the clear by the controller: Hello, then its Noise message.
const CLEAR_FRAMES: usize = 2;
/// Frames the worker sends in the clear: its Noise message.
const WORKER_CLEAR_FRAMES: usize = 1;
/// The script's `spawn` goes in the only record this long: heartbeats and the lab's set-up
/// are far shorter.
const SPAWN_RECORD: usize = 1500;

#[derive(Clone, Copy, Debug)]
enum Attack {
    FlipBit,
    Replay,
    Drop,
    Inject,
    /// A bit of the worker's frame after the spawn's record: the controller finds out.
    FlipBitBack,
}

/// Forwards one controller's connection to the worker, and attacks the spawn's record.
struct Relay {
    addr: String,
    attacked: Arc<AtomicBool>,
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

/// A record a stranger makes up: the number the worker waits for, a `Spawn` of its own in the
/// clear where the sealed bytes belong, and a tag of zeros.
fn forged_spawn(seq: u64, marker: &std::path::Path) -> Vec<u8> {
    let msg = ToWorker::Request {
        id: 999,
        body: Request::Act {
            action: WireAction::Spawn {
                proc: 99,
                node: 0,
                cmd: format!("touch {}", marker.display()),
                argv: Vec::new(),
                shell: true,
                env: Vec::new(),
                user: None,
                stdout: None,
            },
        },
    };
    let mut record = seq.to_be_bytes().to_vec();
    record.push(0);
    record.extend(serde_json::to_vec(&msg).unwrap());
    record.extend([0u8; TAG_LEN]);
    record
}

/// Copies frames from `from` to `to`; `tamper` sees each with its number and says what to
/// send in its place.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    mut tamper: impl FnMut(usize, Vec<u8>) -> Vec<Vec<u8>>,
) {
    let mut n = 0;
    while let Some(body) = read_frame(&mut from) {
        for f in tamper(n, body) {
            if to.write_all(&daemon::frame(&f)).is_err() {
                return;
            }
        }
        n += 1;
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

impl Relay {
    fn start(worker: String, attack: Attack, injected_marker: std::path::PathBuf) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let attacked = Arc::new(AtomicBool::new(false));
        let flag = attacked.clone();
        std::thread::spawn(move || {
            let Ok((controller, _)) = listener.accept() else {
                return;
            };
            let upstream = TcpStream::connect(&worker).unwrap();
            let (back_from, back_to) = (
                upstream.try_clone().unwrap(),
                controller.try_clone().unwrap(),
            );
            // The spawn's record went by: the worker's next sealed frame is the one to change.
            let passed = Arc::new(AtomicBool::new(false));
            let passed_back = passed.clone();
            let flag_back = flag.clone();
            std::thread::spawn(move || {
                pump(back_from, back_to, |n, mut body| {
                    if matches!(attack, Attack::FlipBitBack)
                        && n >= WORKER_CLEAR_FRAMES
                        && passed_back.load(Ordering::SeqCst)
                        && !flag_back.swap(true, Ordering::SeqCst)
                    {
                        let i = body.len() / 2;
                        body[i] ^= 0x10;
                    }
                    vec![body]
                })
            });
            let mut previous = Vec::new();
            pump(controller, upstream, |n, body| {
                let sealed = n >= CLEAR_FRAMES;
                let out =
                    if sealed && body.len() >= SPAWN_RECORD && !passed.swap(true, Ordering::SeqCst)
                    {
                        match attack {
                            Attack::FlipBit => {
                                flag.store(true, Ordering::SeqCst);
                                let mut bad = body.clone();
                                let i = bad.len() / 2;
                                bad[i] ^= 0x10;
                                vec![bad]
                            }
                            Attack::Replay => {
                                flag.store(true, Ordering::SeqCst);
                                vec![previous.clone(), body.clone()]
                            }
                            Attack::Drop => {
                                flag.store(true, Ordering::SeqCst);
                                vec![]
                            }
                            Attack::Inject => {
                                flag.store(true, Ordering::SeqCst);
                                let seq = (n - CLEAR_FRAMES) as u64;
                                vec![forged_spawn(seq, &injected_marker), body.clone()]
                            }
                            Attack::FlipBitBack => vec![body.clone()],
                        }
                    } else {
                        vec![body.clone()]
                    };
                if sealed {
                    previous = body;
                }
                out
            });
        });
        Relay { addr, attacked }
    }
}

fn attack(attack: Attack, expected: &str) {
    let test = format!("a_man_in_the_middle_is_caught ({attack:?})");
    if !can_run_real_mode_with(&test, &["ip"]) {
        return;
    }
    let mut worker = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let injected = dir.path().join("injected");
    let relay = Relay::start(worker.addr.clone(), attack, injected.clone());
    let workers = dir.path().join("workers.txt");
    std::fs::write(&workers, format!("{}\n", relay.addr)).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, daemon::TOKEN).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let script = dir.path().join("mitm.rhai");
    // The padding makes the spawn's record the only long one.
    std::fs::write(
        &script,
        format!(
            r#"
            let n = alloc_ip(1)[0];
            sleep(1);
            spawn(n, "sh -c 'touch {}' {}");
            sleep(10);
            log("the spawn's record got through");
            "#,
            marker.display(),
            "p".repeat(SPAWN_RECORD)
        ),
    )
    .unwrap();
    let start = Instant::now();
    let mut controller = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .arg("script")
        .arg(&script)
        .arg("--workers")
        .arg(&workers)
        .arg("--token-file")
        .arg(&token)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("-q")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let limit = Duration::from_secs(30);
    let ended = common::poll(limit, || matches!(controller.try_wait(), Ok(Some(_))));
    if !ended {
        let _ = controller.kill();
        let _ = controller.wait();
        panic!("{attack:?}: the controller hung for {limit:?}");
    }
    let took = start.elapsed();
    let status = controller.wait().unwrap();
    let mut stderr = String::new();
    controller
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    eprintln!("{attack:?}: controller ended after {took:?} with {status}: {stderr}");
    assert!(
        relay.attacked.load(Ordering::SeqCst),
        "the spawn's record never came"
    );
    assert_eq!(status.code(), Some(3), "{attack:?}: {stderr}");
    assert!(
        stderr.contains("integrity check failed") && stderr.contains(expected),
        "{attack:?}: expected the integrity failure ({expected}) in: {stderr}"
    );
    // The worker removed its lab; nothing ran, now or later.
    assert!(
        common::poll(Duration::from_secs(5), || common::namespaces_of(
            worker.child.id()
        )
        .is_empty()),
        "{attack:?}: the lab is left"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!injected.exists(), "{attack:?}: the injected spawn ran");
    let log = worker.log_text();
    if matches!(attack, Attack::FlipBitBack) {
        // The spawn was rightful (whether it got to run before the lab went is a race); the
        // controller caught the worker's altered frame and closed, and the worker removed its
        // lab for a lost controller.
        assert!(log.contains("controller lost"), "{log}");
    } else {
        assert!(!marker.exists(), "{attack:?}: the spawn ran");
        assert!(
            log.contains("controller lost (session integrity check failed"),
            "{attack:?}: the worker's log does not say what failed: {log}"
        );
    }
    worker.still_serves(Duration::from_secs(5));
}

#[test]
fn a_flipped_bit_ends_the_session() {
    attack(Attack::FlipBit, "altered or forged");
}

#[test]
fn a_replayed_record_ends_the_session() {
    attack(Attack::Replay, "replayed");
}

#[test]
fn a_dropped_record_ends_the_session() {
    attack(Attack::Drop, "dropped or reordered");
}

#[test]
fn an_injected_spawn_ends_the_session() {
    attack(Attack::Inject, "altered or forged");
}

#[test]
fn a_flipped_bit_towards_the_controller_ends_the_run() {
    attack(Attack::FlipBitBack, "altered or forged");
}
