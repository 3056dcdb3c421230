//! The files a real run adds to a results folder, written by hand in the formats a real run
//! writes (`traffic.csv`, `dataplane.csv`, `summary.json`'s `conformance`), for the report's
//! tests to put beside a dry-run's `events.jsonl`.

use std::path::Path;

pub const DATAPLANE_HEADER: &str =
    "t,worker,timed_packets,late_p50_ns,late_p99_ns,late_max_ns,cpu_ns,overruns,write_errors\n";

/// One-second deltas for the nodes 10.0.0.1 to .3 until 9.5 s; silent rows are left out, as a
/// real run does.
pub fn traffic_csv() -> String {
    let mut csv = String::from(
        "t,ip,sent_bytes,sent_packets,recv_bytes,recv_packets,dropped_queue,dropped_loss\n",
    );
    for t in 1..=9 {
        csv += &format!("{t},10.0.0.1,{},10,2000,20,0,0\n", 125_000 * t);
        if t % 2 == 1 {
            csv += &format!("{t},10.0.0.2,1000,2,{},90,1,0\n", 125_000 * t);
        }
        csv += &format!("{t},10.0.0.3,500,1,500,1,0,0\n");
    }
    // The last, partial interval.
    csv += "9.5,10.0.0.1,100,1,250000,200,0,0\n";
    csv
}

/// Two workers until 9.5 s: worker 0 stalls for 2.5 ms in second 5, worker 1 times no packet in
/// second 3.
pub fn dataplane_csv() -> String {
    let mut csv = String::from(DATAPLANE_HEADER);
    for t in 1..=9u64 {
        let p99 = if t == 5 {
            2_500_000
        } else {
            30_000 + 5_000 * t
        };
        let max = p99 * 3;
        csv += &format!(
            "{t},0,{},12000,{p99},{max},{},0,0\n",
            100 * t,
            60_000_000 + 10_000_000 * t
        );
        let timed = if t == 3 { 0 } else { 50 };
        let (p99, max) = if timed == 0 { (0, 0) } else { (8_000, 40_000) };
        csv += &format!("{t},1,{timed},2000,{p99},{max},20000000,0,0\n");
    }
    csv += "9.5,0,40,11000,35000,90000,40000000,0,0\n";
    csv += "9.5,1,10,2000,7000,9000,10000000,0,0\n";
    csv
}

/// The `conformance` of a flagged run of the three nodes, worker 0's stall its problem.
pub fn conformance() -> serde_json::Value {
    serde_json::json!({
        "measured": true,
        "verdict": "flagged",
        "bounds": {"late_p99_ns": 1000000, "cpu_share": 0.9, "rate_tolerance": 0.05},
        "problems": ["worker 0: p99 lateness 2.5 ms, above the 1 ms bound, in 1 of 10 seconds"],
        "workers": [
            {"worker": 0, "seconds": 10, "worst_late_p99_ns": 2500000, "late_max_ns": 7500000,
             "late_seconds": 1, "max_cpu_share": 0.15, "overruns": 0, "write_errors": 0},
            {"worker": 1, "seconds": 10, "worst_late_p99_ns": 8000, "late_max_ns": 40000,
             "late_seconds": 0, "max_cpu_share": 0.02, "overruns": 0, "write_errors": 0}
        ],
        "nodes": [
            {"ip": "10.0.0.1", "up_bps": 2000000, "up_busiest_bps": 1000000,
             "down_bps": 8000000, "down_busiest_bps": 4000000, "ok": true},
            {"ip": "10.0.0.2", "up_bps": null, "up_busiest_bps": 8000,
             "down_bps": 8000000, "down_busiest_bps": 7200000, "ok": true},
            {"ip": "10.0.0.3", "up_bps": 1000000, "up_busiest_bps": 4000,
             "down_bps": 1000000, "down_busiest_bps": 4000, "ok": true}
        ]
    })
}

/// Writes `traffic.csv`, `dataplane.csv` and the `conformance` into the results folder `out`.
pub fn add_real_files(out: &Path) {
    std::fs::write(out.join("traffic.csv"), traffic_csv()).expect("write traffic.csv");
    std::fs::write(out.join("dataplane.csv"), dataplane_csv()).expect("write dataplane.csv");
    let path = out.join("summary.json");
    let text = std::fs::read_to_string(&path).expect("summary.json");
    let mut summary: serde_json::Value = serde_json::from_str(&text).expect("summary is JSON");
    summary["conformance"] = conformance();
    std::fs::write(&path, summary.to_string()).expect("write summary.json");
}
