//! The worker's door (needs root, as `p2plab worker` does): no token, a wrong token, a made-up
//! or replayed handshake, garbage and a frame claiming 4 GiB are all refused; the worker stays
//! up, builds no lab, and still serves a rightful controller, also while 200 half-open
//! connections are held open. Live fuzzing: malformed frames reach a running worker before the
//! handshake and inside authenticated sessions, and the counts printed are those the worker
//! decoded (from its log and its answers), not those sent.

mod common;

#[path = "common/daemon.rs"]
mod daemon;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::can_run_real_mode_with;
use daemon::{Daemon, frame, rt};
use p2plab::proto::messages::{Handshake, Request, ToController, ToWorker};
use p2plab::proto::wire::WireAction;
use p2plab::proto::{Connection, ProtoError, Token};
use rand::{Rng, RngExt, SeedableRng};

/// Writes bytes, closes the writing side, and reads until the worker closes (or 5 s pass).
fn send_raw(addr: &str, bytes: &[u8]) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    start.elapsed()
}

/// What a rightful controller sends during a handshake, recorded on its way to the worker.
fn record_a_handshake(worker: &str) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let worker = worker.to_string();
    let recorder = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut w = TcpStream::connect(worker).unwrap();
        let (mut w2, mut c2) = (w.try_clone().unwrap(), c.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut w2, &mut c2);
        });
        let mut recorded = Vec::new();
        let mut buf = [0u8; 4096];
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        while let Ok(n) = c.read(&mut buf) {
            if n == 0 {
                break;
            }
            recorded.extend_from_slice(&buf[..n]);
            w.write_all(&buf[..n]).unwrap();
        }
        recorded
    });
    let welcomed = rt().block_on(async {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut c = Connection::new(s);
        let r = c.authenticate_to_worker(&Daemon::token()).await;
        // Long enough for the recorder to see all of it; then the session ends.
        tokio::time::sleep(Duration::from_millis(700)).await;
        r
    });
    assert!(welcomed.is_ok(), "{welcomed:?}");
    recorder.join().unwrap()
}

#[test]
fn a_worker_refuses_to_start_without_a_usable_token() {
    let out = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .args(["worker", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file"));
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .args(["worker", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&short)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("shorter than") && err.contains("p2plab token"),
        "{err}"
    );
}

#[test]
fn a_token_file_others_may_read_gets_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("open.token");
    std::fs::write(&token, daemon::TOKEN).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = dir.path().join("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .args(["worker", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&token)
        .arg("--dir")
        .arg(dir.path().join("scratch"))
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let warned = common::poll(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("chmod 600"))
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(warned, "{text}");
    assert!(text.contains("mode 644"), "{text}");
    // `p2plab token` writes files only their owner may read.
    let fresh = dir.path().join("fresh.token");
    let out = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .arg("token")
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn strangers_replays_and_garbage_are_refused() {
    if !can_run_real_mode_with("strangers_replays_and_garbage_are_refused", &["ip"]) {
        return;
    }
    let mut worker = Daemon::start();
    let addr = worker.addr.clone();

    // A controller with another token is told so by the worker.
    let wrong = Token::parse("another-token-0123456789abcdef", "test").unwrap();
    let r = rt().block_on(async {
        let s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        Connection::new(s).authenticate_to_worker(&wrong).await
    });
    assert!(
        matches!(&r, Err(ProtoError::Refused(why)) if why.contains("not the worker's token")),
        "{r:?}"
    );

    // A stranger with a made-up Noise message is refused.
    let refused = rt().block_on(async {
        let s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut c = Connection::new(s);
        c.send(&Handshake::Hello {
            version: p2plab::proto::VERSION,
            nonce: hex::encode([7u8; 32]),
        })
        .await
        .unwrap();
        c.send(&Handshake::Noise {
            message: hex::encode([0u8; 48]),
        })
        .await
        .unwrap();
        c.recv::<Handshake>().await
    });
    assert!(
        matches!(&refused, Ok(Handshake::Refused { reason }) if reason.contains("token")),
        "{refused:?}"
    );

    // Replay: the bytes of a rightful handshake, recorded, then sent again on a new
    // connection. The worker's fresh ephemeral key makes the recorded claim worthless.
    let recorded = record_a_handshake(&addr);
    let sessions = worker.sessions();
    assert!(send_raw(&addr, &recorded) < Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        worker.sessions(),
        sessions,
        "a replayed handshake got a session"
    );

    // Garbage, and a frame that claims 4 GiB: the connection is closed at once.
    assert!(send_raw(&addr, b"GET / HTTP/1.0\r\n\r\n") < Duration::from_secs(5));
    assert!(send_raw(&addr, &u32::MAX.to_be_bytes()) < Duration::from_secs(5));
    // A request before any handshake is not executed.
    let setup = br#"{"type":"request","id":1,"body":{"request":"setup","index":0,"seed":1,"mtu":1500,"hint":"x","run":1,"key":"00","peers":[]}}"#;
    send_raw(&addr, &frame(setup));
    worker.still_serves(Duration::from_secs(5));
    // Sessions only for the rightful handshakes: the recorded one and two checks.
    common::poll(Duration::from_secs(3), || worker.sessions() >= 2);
    assert_eq!(worker.sessions(), sessions + 1, "{}", worker.log_text());
}

#[test]
fn a_rightful_controller_gets_in_while_200_connections_are_half_open() {
    if !can_run_real_mode_with(
        "a_rightful_controller_gets_in_while_200_connections_are_half_open",
        &["ip"],
    ) {
        return;
    }
    let mut worker = Daemon::start();
    let hello = serde_json::to_vec(&Handshake::Hello {
        version: p2plab::proto::VERSION,
        nonce: hex::encode([1u8; 32]),
    })
    .unwrap();
    // From the controller's own address, the hardest case: half of them said hello and then
    // nothing, the other half not even that.
    let mut held = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(&worker.addr).unwrap();
        if i % 2 == 0 {
            s.write_all(&frame(&hello)).unwrap();
        }
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let took = worker.still_serves(Duration::from_secs(2));
    eprintln!("with 200 half-open connections held, a rightful handshake took {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    drop(held);
}

/// One change to a valid frame: a flipped bit, a byte replaced, cut short, bytes inserted,
/// or a slice repeated.
fn mutate(rng: &mut impl Rng, base: &[u8]) -> Vec<u8> {
    let mut f = base.to_vec();
    if f.is_empty() {
        return f;
    }
    let i = rng.random_range(0..f.len());
    match rng.random_range(0..5) {
        0 => f[i] ^= 1 << rng.random_range(0..8),
        1 => f[i] = rng.random(),
        2 => f.truncate(i),
        3 => {
            let extra: Vec<u8> = (0..rng.random_range(1..8)).map(|_| rng.random()).collect();
            f.splice(i..i, extra);
        }
        _ => {
            let j = rng.random_range(i..f.len());
            let slice = f[i..=j].to_vec();
            f.splice(i..i, slice);
        }
    }
    f
}

/// Random bytes, or a mutation of one of `bases`.
fn fuzz_frame(rng: &mut impl Rng, bases: &[Vec<u8>]) -> Vec<u8> {
    if rng.random_range(0..4) == 0 {
        return (0..rng.random_range(0..200))
            .map(|_| rng.random())
            .collect();
    }
    let base = &bases[rng.random_range(0..bases.len())];
    mutate(rng, base)
}

#[test]
fn malformed_frames_reach_a_live_worker_before_and_after_the_handshake() {
    if !can_run_real_mode_with(
        "malformed_frames_reach_a_live_worker_before_and_after_the_handshake",
        &["ip"],
    ) {
        return;
    }
    let mut worker = Daemon::start();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);

    // Before the handshake: one frame per connection, since the worker closes a stranger's
    // connection at its first bad frame. It logs why it refused each.
    let handshake_bases: Vec<Vec<u8>> = [
        Handshake::Hello {
            version: p2plab::proto::VERSION,
            nonce: hex::encode([3u8; 32]),
        },
        Handshake::Noise {
            message: hex::encode([4u8; 48]),
        },
        Handshake::Claim,
        Handshake::Refused { reason: "x".into() },
    ]
    .iter()
    .map(|m| serde_json::to_vec(m).unwrap())
    .collect();
    const STRANGERS: usize = 2000;
    for _ in 0..STRANGERS {
        send_raw(
            &worker.addr,
            &frame(&fuzz_frame(&mut rng, &handshake_bases)),
        );
    }
    let refusals = || worker.log_text().matches("refused: ").count();
    common::poll(Duration::from_secs(10), || refusals() >= STRANGERS);
    let log = worker.log_text();
    let malformed = log.matches("refused: malformed frame: ").count();
    let too_long = log
        .matches("refused: malformed frame: frame size too big")
        .count();
    let other_kind = log
        .matches("refused: malformed frame: unexpected handshake")
        .count();
    let versions = log.matches("refused: protocol version").count();
    // A valid hello of this version, after which the stranger closed.
    let hellos = log.matches("refused: connection closed").count();
    let decoded = malformed - too_long + versions + hellos;
    eprintln!(
        "before the handshake: {STRANGERS} connections, {decoded} frames decoded by the worker \
         ({} malformed, {other_kind} of the wrong kind, {versions} of another version, {hellos} \
         valid hellos); {too_long} refused by length before decoding",
        malformed - too_long - other_kind
    );
    assert_eq!(decoded + too_long, STRANGERS, "{log}");
    worker.still_serves(Duration::from_secs(5));

    // Inside authenticated sessions: one sealed malformed message per session. The worker
    // answers a malformed one with Abort and its reason; a valid one is carried out.
    let session_bases: Vec<Vec<u8>> = [
        ToWorker::Heartbeat,
        ToWorker::Request {
            id: 7,
            body: Request::Traffic { interval: false },
        },
        ToWorker::Request {
            id: 8,
            body: Request::Act {
                action: WireAction::Kill { proc: 1 },
            },
        },
        ToWorker::Request {
            id: 9,
            body: Request::Collect,
        },
    ]
    .iter()
    .map(|m| serde_json::to_vec(m).unwrap())
    .collect();
    const SESSIONS: usize = 300;
    let (mut aborted, mut carried_out) = (0, 0);
    let token = Daemon::token();
    for _ in 0..SESSIONS {
        let message = fuzz_frame(&mut rng, &session_bases);
        let outcome = rt().block_on(async {
            let mut c = loop {
                let s = tokio::net::TcpStream::connect(&worker.addr).await.unwrap();
                let mut c = Connection::new(s);
                match c.authenticate_to_worker(&token).await {
                    Ok(_) => break c,
                    Err(ProtoError::Refused(why)) if why.contains("another controller") => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            c.send_bytes(&message).await.unwrap();
            c.send(&ToWorker::Request {
                id: 1000,
                body: Request::Stop,
            })
            .await
            .unwrap();
            loop {
                match tokio::time::timeout(Duration::from_secs(5), c.recv::<ToController>()).await {
                    Ok(Ok(ToController::Abort { reason })) => break Some(reason),
                    Ok(Ok(ToController::Reply { id: 1000, .. })) => break None,
                    Ok(Ok(_)) => {}
                    other => panic!(
                        "no answer to a fuzzed session ({}): {other:?}",
                        String::from_utf8_lossy(&message)
                    ),
                }
            }
        });
        match outcome {
            Some(reason) => {
                assert!(reason.starts_with("malformed frame"), "{reason}");
                aborted += 1;
            }
            None => carried_out += 1,
        }
    }
    eprintln!(
        "inside sessions: {SESSIONS} sealed messages decoded by the worker: {aborted} malformed \
         (session ended with Abort), {carried_out} valid (carried out)"
    );
    assert_eq!(aborted + carried_out, SESSIONS);
    assert!(aborted > SESSIONS / 2);
    worker.still_serves(Duration::from_secs(5));
}
