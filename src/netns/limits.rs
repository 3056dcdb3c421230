//! A node's CPU and memory limits in cgroup files, and what it used: the node cgroup's own v2
//! files (`cpu.max`, `cpu.weight`, `memory.max`) where the lab's cgroup has the cpu and memory
//! controllers, otherwise a cgroup of the node in each v1 hierarchy (`cpu`, `memory`), named
//! `<v1 mount>/<lab name>/n<ip>`, which its programs enter too. CPU time is read from the v2
//! node cgroup's `cpu.stat`, which the kernel keeps with or without the cpu controller: a
//! cgroup in `cpuacct` too would cost every spawn a write and the lab's end an `rmdir`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::experiment::NodeLimits;

/// The CFS period the quota of `cpu` is a share of: 100 ms, the kernel's default.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel accepts, in microseconds.
const MIN_QUOTA_US: u64 = 1_000;

/// The v1 controllers a node's limits and usage need, by the name the mount options give.
pub const V1_CONTROLLERS: [&str; 2] = ["cpu", "memory"];

/// What a node used, in microseconds of CPU and bytes of memory, and how long its programs
/// waited for a CPU: `cpu_wait_usec` is the time at least one of them was ready to run but
/// not running (the cgroup's CPU pressure, `some`; `None` on a kernel without pressure
/// stall information), `throttled_usec` the time its own CPU quota held them back.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeUsage {
    pub cpu_usec: u64,
    pub cpu_wait_usec: Option<u64>,
    pub throttled_usec: u64,
    /// Since its cgroup was made.
    pub seconds: f64,
    pub memory_peak: u64,
}

impl NodeUsage {
    /// The time its programs waited for a CPU beyond their own quota, in seconds.
    pub fn waited_seconds(&self) -> Option<f64> {
        let wait = self.cpu_wait_usec?;
        Some(wait.saturating_sub(self.throttled_usec) as f64 / 1e6)
    }
}

/// The time a CPU quota held a cgroup back, in microseconds, from its `cpu.stat`: the
/// kernel's `throttled` total (`throttled_usec`, or v1 `throttled_time` in ns) adds up each
/// CPU's throttled time, so it is capped at a whole period per throttling, which is as long
/// as one lasts on the wall clock.
pub fn throttled_usec(cpu_stat: &str) -> u64 {
    let total = keyed(cpu_stat, "throttled_usec")
        .or_else(|| keyed(cpu_stat, "throttled_time").map(|ns| ns / 1000))
        .unwrap_or(0);
    let periods = keyed(cpu_stat, "nr_throttled").unwrap_or(0);
    total.min(periods.saturating_mul(CPU_PERIOD_US))
}

/// The CFS quota of `cpu` cores per [`CPU_PERIOD_US`], at least the kernel's minimum.
pub fn cpu_quota_us(cpu: f64) -> u64 {
    ((cpu * CPU_PERIOD_US as f64).round() as u64).max(MIN_QUOTA_US)
}

/// v1 `cpu.shares` of a v2 `cpu.weight`: the default weight 100 is the default 1024 shares.
pub fn cpu_shares(weight: u32) -> u64 {
    (u64::from(weight) * 1024 / 100).max(2)
}

/// The files and values that set `limits` in a v2 node cgroup; what is unset is lifted.
/// A memory limit allows no swap, which would stretch it.
pub fn v2_writes(limits: &NodeLimits) -> Vec<(&'static str, String)> {
    let max = |v: Option<String>| v.unwrap_or_else(|| "max".into());
    vec![
        (
            "cpu.max",
            format!(
                "{} {CPU_PERIOD_US}",
                max(limits.cpu.map(|c| cpu_quota_us(c).to_string()))
            ),
        ),
        ("cpu.weight", limits.cpu_weight.unwrap_or(100).to_string()),
        ("memory.max", max(limits.memory.map(|m| m.to_string()))),
        ("memory.swap.max", max(limits.memory.map(|_| "0".into()))),
    ]
}

/// The files and values that set `limits` in v1 node cgroups, by controller; unset is lifted
/// (`-1`). `memory.memsw.limit_in_bytes` keeps swap from stretching the limit, where the
/// kernel accounts swap.
pub fn v1_writes(limits: &NodeLimits) -> Vec<(&'static str, &'static str, String)> {
    let memory = limits.memory.map_or("-1".to_string(), |m| m.to_string());
    vec![
        ("cpu", "cpu.cfs_period_us", CPU_PERIOD_US.to_string()),
        (
            "cpu",
            "cpu.cfs_quota_us",
            limits
                .cpu
                .map_or("-1".to_string(), |c| cpu_quota_us(c).to_string()),
        ),
        (
            "cpu",
            "cpu.shares",
            cpu_shares(limits.cpu_weight.unwrap_or(100)).to_string(),
        ),
        ("memory", "memory.limit_in_bytes", memory.clone()),
        ("memory", "memory.memsw.limit_in_bytes", memory),
    ]
}

/// A `key value` line's value in a flat-keyed cgroup file (`cpu.stat`, `memory.events`,
/// `memory.oom_control`).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// The `total` (microseconds) of the `kind` line (`some` or `full`) of a pressure file
/// (`cpu.pressure`: `some avg10=0.00 avg60=0.00 avg300=0.00 total=1234`).
pub fn pressure_total(text: &str, kind: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(kind)?.strip_prefix(' '))?
        .split_whitespace()
        .find_map(|field| field.strip_prefix("total=")?.parse().ok())
}

/// The mount point of each v1 hierarchy that has one of [`V1_CONTROLLERS`], from
/// `/proc/self/mountinfo`: (controller, mount). Co-mounted controllers share a mount.
pub fn v1_mounts() -> Vec<(&'static str, PathBuf)> {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|m| parse_v1_mounts(&m))
        .unwrap_or_default()
}

/// The distinct mount points of [`v1_mounts`], in order (co-mounted controllers once).
pub fn v1_mount_points() -> Vec<PathBuf> {
    let mut points: Vec<PathBuf> = Vec::new();
    for (_, mount) in v1_mounts() {
        if !points.contains(&mount) {
            points.push(mount);
        }
    }
    points
}

fn parse_v1_mounts(mountinfo: &str) -> Vec<(&'static str, PathBuf)> {
    let mut found = Vec::new();
    for line in mountinfo.lines() {
        let Some((mount, fs)) = line.split_once(" - ") else {
            continue;
        };
        let mut fs = fs.split_whitespace();
        if fs.next() != Some("cgroup") {
            continue;
        }
        let options: Vec<&str> = fs.nth(1).unwrap_or("").split(',').collect();
        let mut fields = mount.split_whitespace();
        let (Some(root), Some(point)) = (fields.nth(3), fields.next()) else {
            continue;
        };
        if root != "/" {
            continue;
        }
        for controller in V1_CONTROLLERS {
            if options.contains(&controller) && !found.iter().any(|(c, _)| *c == controller) {
                found.push((controller, PathBuf::from(point)));
            }
        }
    }
    found
}

/// Writes `value` to `dir/file`; a file this kernel lacks is skipped.
pub fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    match fs::write(dir.join(file), value) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A number from a cgroup file: the whole file, or the value of `key` in it.
pub fn read(dir: &Path, file: &str, key: Option<&str>) -> Option<u64> {
    let text = fs::read_to_string(dir.join(file)).ok()?;
    match key {
        Some(key) => keyed(&text, key),
        None => text.trim().parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarter_core_is_a_quarter_of_the_period() {
        assert_eq!(cpu_quota_us(0.25), 25_000);
        assert_eq!(cpu_quota_us(2.0), 200_000);
        assert_eq!(cpu_quota_us(0.000_001), MIN_QUOTA_US);
    }

    #[test]
    fn weights_become_shares() {
        assert_eq!(cpu_shares(100), 1024);
        assert_eq!(cpu_shares(1), 10);
        assert_eq!(cpu_shares(10_000), 102_400);
    }

    #[test]
    fn unset_limits_are_lifted() {
        let none = NodeLimits::default();
        assert_eq!(
            v2_writes(&none),
            vec![
                ("cpu.max", "max 100000".to_string()),
                ("cpu.weight", "100".to_string()),
                ("memory.max", "max".to_string()),
                ("memory.swap.max", "max".to_string()),
            ]
        );
        let set = NodeLimits {
            cpu: Some(0.5),
            cpu_weight: Some(50),
            memory: Some(1 << 26),
        };
        assert_eq!(v2_writes(&set)[0].1, "50000 100000");
        assert_eq!(v2_writes(&set)[3].1, "0");
        let v1 = v1_writes(&set);
        assert!(v1.contains(&("cpu", "cpu.cfs_quota_us", "50000".to_string())));
        assert!(v1.contains(&("cpu", "cpu.shares", "512".to_string())));
        assert!(v1.contains(&("memory", "memory.limit_in_bytes", "67108864".to_string())));
        assert!(v1_writes(&none).contains(&("cpu", "cpu.cfs_quota_us", "-1".to_string())));
    }

    #[test]
    fn keyed_files_are_read_by_key() {
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(oom, "oom_kill"), Some(3));
        assert_eq!(keyed(oom, "oom"), None);
        assert_eq!(keyed("usage_usec 12\nuser_usec x\n", "user_usec"), None);
    }

    #[test]
    fn pressure_totals_by_kind() {
        let text = "some avg10=1.50 avg60=0.20 avg300=0.00 total=4110795\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=17\n";
        assert_eq!(pressure_total(text, "some"), Some(4_110_795));
        assert_eq!(pressure_total(text, "full"), Some(17));
        assert_eq!(pressure_total(text, "som"), None);
        assert_eq!(pressure_total("some avg10=0.00\n", "some"), None);
    }

    #[test]
    fn a_wait_beyond_the_quota_is_what_the_quota_did_not_cause() {
        let usage = NodeUsage {
            cpu_wait_usec: Some(3_000_000),
            throttled_usec: 2_500_000,
            ..NodeUsage::default()
        };
        assert_eq!(usage.waited_seconds(), Some(0.5));
        let throttled_more = NodeUsage {
            throttled_usec: 4_000_000,
            ..usage
        };
        assert_eq!(throttled_more.waited_seconds(), Some(0.0));
        let no_pressure = NodeUsage {
            cpu_wait_usec: None,
            ..usage
        };
        assert_eq!(no_pressure.waited_seconds(), None, "not measured is not 0");
    }

    #[test]
    fn throttled_time_is_at_most_a_period_per_throttling() {
        let v2 = "usage_usec 5\nnr_periods 40\nnr_throttled 30\nthrottled_usec 2500000\n";
        assert_eq!(throttled_usec(v2), 2_500_000);
        // Two CPUs throttled at once count twice in the kernel's total.
        let v1 = "nr_periods 40\nnr_throttled 30\nthrottled_time 5000000000\n";
        assert_eq!(throttled_usec(v1), 30 * CPU_PERIOD_US);
        assert_eq!(throttled_usec("usage_usec 5\n"), 0);
    }

    #[test]
    fn v1_mounts_by_controller() {
        let hybrid = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
42 31 0:32 /sub /mnt/m rw - cgroup cgroup rw,memory
";
        assert_eq!(
            parse_v1_mounts(hybrid),
            vec![
                ("cpu", PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")),
                ("memory", PathBuf::from("/sys/fs/cgroup/memory")),
            ]
        );
        assert!(parse_v1_mounts("41 31 0:38 / /u rw - cgroup2 cgroup2 rw\n").is_empty());
    }
}
