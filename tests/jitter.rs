//! Jitter distributions, correlation and bursty loss on real traffic (needs root): the RTTs
//! of pings over a link with normal jitter have the mean and spread the model says,
//! correlated jitter makes consecutive RTTs alike, and Gilbert–Elliott loss loses pings at
//! its closed-form rate, in runs.

mod common;

use common::{Scenario, can_run_real_mode_with, node_file, ping_rtts, real_run};

/// Mean, standard deviation and lag-1 autocorrelation.
fn stats(xs: &[f64]) -> (f64, f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let cov = xs
        .windows(2)
        .map(|w| (w[0] - mean) * (w[1] - mean))
        .sum::<f64>()
        / (n - 1.0);
    (mean, var.sqrt(), cov / var)
}

/// Two pairs ping at once: in each, the pinged node has 20 ms of latency and 4 ms of normal
/// jitter, uncorrelated in one pair and 75 % correlated in the other. A ping crosses that
/// node's link twice (in, then out), with a jitter draw each way from two independent
/// chains, so its RTT is 40 ms + the unshaped RTT, spread by 4·√2 = 5.66 ms when the draws
/// are uncorrelated. Pings 20 ms apart are never held back for each other (that would take
/// two draws 20 ms apart, 3.5 standard deviations).
#[test]
fn normal_jitter_gives_its_mean_spread_and_correlation() {
    if !can_run_real_mode_with(
        "normal_jitter_gives_its_mean_spread_and_correlation",
        &["ping"],
    ) {
        return;
    }
    let s = Scenario::new(
        r#"
        let free = alloc_ip(2);
        let fresh = alloc_ip(2);
        let alike = alloc_ip(2);
        shape(fresh[1], #{ latency: "20ms", jitter: "4ms", jitter_dist: "normal" });
        shape(alike[1], #{ latency: "20ms", jitter: "4ms", jitter_dist: "normal",
                           jitter_correlation: "75%" });
        let procs = [];
        for p in [free, fresh, alike] {
            procs.push(spawn(p[0], `ping -c 500 -i 0.02 -I {ip} ${p[1].ip}`));
        }
        for p in procs { p.wait(); }
        "#,
    );
    real_run(&s);
    let rtts = |ip: &str| ping_rtts(&node_file(&s, ip, "stdout.log"));
    let (base, ..) = stats(&rtts("10.0.0.1"));
    let fresh = rtts("10.0.0.3");
    assert!(fresh.len() >= 495, "{} replies of 500", fresh.len());
    let (mean, sd, lag1) = stats(&fresh);
    // Five standard errors: σ/√n = 0.25 ms for the mean, σ/√(2n) = 0.18 ms for the spread
    // (plus a little for the host's own timing noise). A uniform ±4 ms jitter would spread
    // RTTs by only 3.27 ms.
    let want = 40.0 + base;
    let want_sd = 4.0 * 2f64.sqrt();
    eprintln!(
        "normal jitter: RTT mean {mean:.2} ms (want {want:.2}), sd {sd:.2} (want {want_sd:.2}), \
         lag-1 {lag1:.2}"
    );
    assert!((mean - want).abs() < 1.5, "mean RTT {mean} ms, want {want}");
    assert!(
        (sd - want_sd).abs() < 1.0,
        "RTT spread {sd} ms, want {want_sd}"
    );
    // 1/√n = 0.045 is one standard error of a lag-1 autocorrelation.
    assert!(
        lag1.abs() < 0.2,
        "uncorrelated jitter: lag-1 autocorrelation {lag1}"
    );

    let alike = rtts("10.0.0.5");
    assert!(alike.len() >= 495, "{} replies of 500", alike.len());
    let (mean, sd, lag1) = stats(&alike);
    eprintln!("correlated normal jitter: RTT mean {mean:.2} ms, sd {sd:.2}, lag-1 {lag1:.2}");
    assert!((mean - want).abs() < 3.0, "correlated: mean RTT {mean} ms");
    // netem's correlation averages draws: the spread narrows as well.
    assert!(sd < want_sd, "correlated: spread {sd} ms");
    assert!(
        lag1 > 0.5,
        "correlated jitter: lag-1 autocorrelation {lag1}"
    );
}

/// 4000 pings to a node whose link has Gilbert–Elliott loss `p = 0.05, r = 0.3` (bad packets
/// lost, good ones kept): each direction loses π = p/(p+r) = 14.3 % of what reaches it, so a
/// round is lost with probability 1 - (1-π)² = 26.5 %, and losses come in runs.
#[test]
fn burst_loss_loses_pings_at_its_rate_in_runs() {
    if !can_run_real_mode_with("burst_loss_loses_pings_at_its_rate_in_runs", &["ping"]) {
        return;
    }
    let s = Scenario::new(
        r#"
        let n = alloc_ip(2);
        shape(n[1], #{ loss: #{ p: 0.05, r: 0.3 } });
        spawn(n[0], `ping -c 4000 -i 0.002 -W 1 -I {ip} ${n[1].ip}`).wait();
        "#,
    );
    real_run(&s);
    let log = node_file(&s, "10.0.0.1", "stdout.log");
    let replied: std::collections::HashSet<u32> = log
        .lines()
        .filter_map(|l| {
            l.split("icmp_seq=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    let lost: Vec<bool> = (1..=4000).map(|seq| !replied.contains(&seq)).collect();
    let rate = lost.iter().filter(|&&l| l).count() as f64 / lost.len() as f64;
    // Losses are correlated, so the standard error is √(π(1-π)(1+λ)/(1-λ)/n) with λ = 1-p-r,
    // about 0.012 per direction: 0.08 on the round is over five of them.
    let pi: f64 = 0.05 / 0.35;
    let want = 1.0 - (1.0 - pi).powi(2);
    assert!(
        (rate - want).abs() < 0.08,
        "lost {rate} of rounds, want {want}"
    );
    // Independent losses at this rate would give runs of 1/(1-0.265) = 1.36 rounds; bursts
    // of the request direction alone average 1/r = 3.3.
    let runs = lost.windows(2).filter(|w| w[1] && !w[0]).count() + usize::from(lost[0]);
    let mean_run = lost.iter().filter(|&&l| l).count() as f64 / runs as f64;
    eprintln!("Gilbert-Elliott: {rate:.3} of rounds lost (want {want:.3}), runs of {mean_run:.2}");
    assert!(
        mean_run > 2.0,
        "lost pings come in runs of {mean_run} on average"
    );
}
