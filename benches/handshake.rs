//! Handshakes per second over TCP on loopback, without privileges: the full Noise handshake
//! and claim of the control channel (`authenticate_to_worker` against
//! `authenticate_controller`), each on a fresh connection, next to a baseline of the same
//! number of fresh connections that each exchange one frame in the clear. Both ends run on
//! one runtime; a handshake counts once the worker side has welcomed the controller.
//!   cargo bench --bench handshake

use std::time::Instant;

use p2plab::proto::{Connection, Token};
use tokio::net::{TcpListener, TcpStream};

const HANDSHAKES: usize = 2_000;
const RUNS: usize = 5;

/// Seconds for `HANDSHAKES` connections, each authenticated (`noise`) or one frame each way.
async fn timed(noise: bool) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = Token::parse(&Token::generate(), "bench").unwrap();
    let worker_token = token.clone();
    let worker = tokio::spawn(async move {
        for _ in 0..HANDSHAKES {
            let (s, _) = listener.accept().await.unwrap();
            let mut conn = Connection::new(s);
            if noise {
                conn.authenticate_controller(&worker_token, "bench", || Ok(()))
                    .await
                    .unwrap();
            } else {
                let hello: String = conn.recv().await.unwrap();
                conn.send(&hello).await.unwrap();
            }
        }
    });
    let start = Instant::now();
    for _ in 0..HANDSHAKES {
        let mut conn = Connection::new(TcpStream::connect(addr).await.unwrap());
        if noise {
            conn.authenticate_to_worker(&token).await.unwrap();
        } else {
            conn.send(&"hello").await.unwrap();
            let _: String = conn.recv().await.unwrap();
        }
    }
    worker.await.unwrap();
    start.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut noise, mut clear) = (Vec::new(), Vec::new());
    // Alternated, so that the machine's noise falls on both alike.
    for _ in 0..RUNS {
        clear.push(rt.block_on(timed(false)));
        noise.push(rt.block_on(timed(true)));
    }
    let (noise, clear) = (median(noise), median(clear));
    let per_s = |secs: f64| HANDSHAKES as f64 / secs;
    println!(
        "{HANDSHAKES} fresh connections, median of {RUNS} runs:\n  \
         Noise handshake + claim: {:>8.0} handshakes/s ({:.0} us each)\n  \
         baseline, one frame each way in the clear: {:>8.0} connections/s ({:.0} us each)\n  \
         cost of the handshake: {:.1}x the baseline",
        per_s(noise),
        noise / HANDSHAKES as f64 * 1e6,
        per_s(clear),
        clear / HANDSHAKES as f64 * 1e6,
        noise / clear
    );
}
