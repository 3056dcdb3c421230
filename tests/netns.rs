//! Lab namespaces on the real kernel: creation as `ip netns` sees it, batched node addresses,
//! the hairpin into a TUN device, removal with the lab's processes, and `p2plab cleanup`.
//! These need root: without it they print why they skip, except under `CI=true`.

use std::error::Error;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use p2plab::netns::{self, LabNamespace, Ledger, NetnsError};

type TestResult = Result<(), Box<dyn Error>>;

/// Whether real-mode tests can run here; under `CI=true` they must.
fn privileged() -> bool {
    let why = match (netns::require_privileges(), netns::require_tun_device()) {
        (Ok(()), Ok(())) => return true,
        (Err(e), _) | (_, Err(e)) => e.to_string(),
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("real-mode test cannot run under CI=true: {why}");
    }
    println!("skipping: {why}");
    false
}

/// stdout of a command that must succeed.
fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip netns exec <lab> <args>`.
fn in_lab(lab: &LabNamespace, args: &[&str]) -> String {
    let mut all = vec!["netns", "exec", lab.name()];
    all.extend_from_slice(args);
    run("ip", &all)
}

fn netns_listed(name: &str) -> bool {
    run("ip", &["netns", "list"])
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

/// A TCP socket bound to `src`, connecting to `dst` (blocking or not).
fn tcp_from(src: Ipv4Addr, dst: SocketAddrV4, blocking: bool) -> std::io::Result<OwnedFd> {
    let sockaddr = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let flags = if blocking { 0 } else { libc::SOCK_NONBLOCK };
    // SAFETY: plain socket calls on a descriptor owned here, with valid sockaddr_in values.
    unsafe {
        let raw = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | flags,
            0,
        );
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(raw);
        let local = sockaddr(SocketAddrV4::new(src, 0));
        if libc::bind(raw, (&local as *const libc::sockaddr_in).cast(), len) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = sockaddr(dst);
        if libc::connect(raw, (&remote as *const libc::sockaddr_in).cast(), len) < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(err);
            }
        }
        Ok(fd)
    }
}

/// Opens TUN device `name` (IFF_TUN | IFF_NO_PI) in the calling thread's namespace.
fn open_tun(name: &str) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    // SAFETY: ifreq is plain data; TUNSETIFF reads the name and flags set here.
    unsafe {
        let mut req: libc::ifreq = mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        if libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(file)
}

/// The next IPv4 TCP packet read from `tun` within `within` (other packets, such as IPv6
/// router solicitations, are skipped).
fn next_tcp_packet(tun: &mut File, within: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 2048];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let mut pfd = libc::pollfd {
            fd: tun.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, left.as_millis() as libc::c_int) } <= 0 {
            return None;
        }
        let n = tun.read(&mut buf).ok()?;
        let p = &buf[..n];
        if n >= 40 && p[0] >> 4 == 4 && p[9] == 6 && n >= usize::from(p[0] & 0xf) * 4 + 20 {
            return Some(p.to_vec());
        }
    }
    None
}

/// Source, destination and TCP flags of an IPv4 TCP packet.
fn tcp_summary(p: &[u8]) -> (Ipv4Addr, Ipv4Addr, u8) {
    let ihl = usize::from(p[0] & 0xf) * 4;
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    (src, dst, p[ihl + 13])
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// `sleep 100` started inside the lab namespace.
fn sleep_in(lab: &LabNamespace) -> std::io::Result<Child> {
    let fd = lab.ns_fd();
    let mut cmd = Command::new("sleep");
    cmd.arg("100").stdin(Stdio::null());
    // SAFETY: setns is async-signal-safe; the fd stays open until exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Waits up to 2 s for `child` to end; its exit status.
fn wait_briefly(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().ok()? {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A pid that ran and is gone.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait true");
    pid
}

#[test]
fn bad_hints_are_refused_before_anything_is_made() {
    for hint in ["", "a/b", "x y", &"h".repeat(41)] {
        assert!(
            matches!(LabNamespace::create(hint), Err(NetnsError::BadHint { .. })),
            "{hint:?}"
        );
    }
}

#[test]
fn create_is_seen_by_ip_netns_and_drop_removes_it() -> TestResult {
    if !privileged() {
        return Ok(());
    }
    let lab = LabNamespace::create("t-create")?;
    let name = lab.name().to_string();
    assert_eq!(name, format!("p2plab-{}-t-create", std::process::id()));
    assert!(netns_listed(&name));
    let ledger = Ledger::read(lab.ledger_path())?;
    assert_eq!(ledger.owner_pid, std::process::id());
    assert_eq!(ledger.namespace, name);
    assert!(ledger.owner_alive());

    // A second lab of the same name is refused, and leaves the first one intact.
    assert!(matches!(
        LabNamespace::create("t-create"),
        Err(NetnsError::NamespaceExists { .. })
    ));
    assert!(netns_listed(&name));
    assert_eq!(Ledger::read(lab.ledger_path())?, ledger);

    // A fresh namespace: only lo, and down.
    let links = in_lab(&lab, &["ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && !links.contains("UP"), "{links}");
    lab.bring_up_loopback()?;
    assert!(in_lab(&lab, &["ip", "-o", "link"]).contains("UP"));

    let ledger_path = lab.ledger_path().to_path_buf();
    drop(lab);
    assert!(!netns_listed(&name));
    assert!(!ledger_path.exists());
    assert!(!Path::new(netns::NETNS_RUN_DIR).join(&name).exists());
    Ok(())
}

#[test]
fn ten_thousand_node_addresses_and_tcp_between_two() -> TestResult {
    if !privileged() {
        return Ok(());
    }
    let lab = LabNamespace::create("t-addrs")?;
    lab.bring_up_loopback()?;
    let addrs: Vec<Ipv4Addr> = (0..10_000u32)
        .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 77, 0, 1)) + i))
        .collect();
    // The kernel walks the interface's address list on every insert, so the cost per address
    // grows with the number already there: the first 2000 are much faster than the rest.
    let start = Instant::now();
    lab.add_node_addresses(&addrs[..2_000])?;
    let first = start.elapsed();
    lab.add_node_addresses(&addrs[2_000..])?;
    let took = start.elapsed();
    println!("added 10000 /32 addresses on lo in {took:?} (the first 2000 in {first:?})");
    assert!(took < Duration::from_secs(2), "{took:?}");

    let shown = in_lab(&lab, &["ip", "-4", "-o", "addr", "show", "dev", "lo"]);
    assert_eq!(shown.lines().count(), 10_001, "10000 nodes and 127.0.0.1");
    assert!(shown.contains("inet 10.77.39.16/32"), "the last address");

    // Adding one again is an error that names the operation.
    let again = lab.add_node_addresses(&addrs[..1]).unwrap_err();
    assert!(again.to_string().contains("add address"), "{again}");
    let mut nl = lab.netlink()?;
    nl.del_address(1, addrs[9_999])?;
    assert!(
        !in_lab(&lab, &["ip", "-4", "-o", "addr", "show", "dev", "lo"]).contains("10.77.39.16/")
    );

    // A listener made inside the lab stays there; a connection from another node reaches it.
    let (a, b) = (addrs[0], addrs[4_321]);
    let listener = lab.run_in(|| TcpListener::bind((a, 0)))??;
    let port = listener.local_addr()?.port();
    let client = lab.run_in(|| tcp_from(b, SocketAddrV4::new(a, port), true))??;
    let mut client = TcpStream::from(client);
    let (mut served, peer) = listener.accept()?;
    assert_eq!(peer.ip(), b);
    client.write_all(b"ping")?;
    let mut got = [0u8; 4];
    served.read_exact(&mut got)?;
    assert_eq!(&got, b"ping");

    // The host has none of it.
    assert!(TcpListener::bind((a, 0)).is_err());
    Ok(())
}

#[test]
fn hairpin_steers_traffic_between_nodes_into_the_tun() -> TestResult {
    if !privileged() {
        return Ok(());
    }
    let lab = LabNamespace::create("t-hairpin")?;
    lab.bring_up_loopback()?;
    let (a, b) = (Ipv4Addr::new(10, 88, 0, 1), Ipv4Addr::new(10, 88, 3, 7));
    lab.add_node_addresses(&[a, b])?;
    assert!(matches!(
        lab.install_hairpin("p2p0", Ipv4Addr::new(10, 88, 0, 0), 16, 1400),
        Err(NetnsError::NoSuchInterface { .. })
    ));
    let mut tun = lab.run_in(|| open_tun("p2p0"))??;
    // Host bits in the prefix are masked off.
    lab.install_hairpin("p2p0", Ipv4Addr::new(10, 88, 1, 2), 16, 1400)?;

    let rules = in_lab(&lab, &["ip", "rule", "show"]);
    assert!(
        rules.contains("100:\tfrom all to 10.88.0.0/16 iif lo lookup 100"),
        "{rules}"
    );
    assert!(rules.contains("1000:\tfrom all lookup local"), "{rules}");
    assert!(!rules.lines().any(|l| l.starts_with("0:")), "{rules}");
    let routes = in_lab(&lab, &["ip", "route", "show", "table", "100"]);
    assert!(
        routes.contains("10.88.0.0/16 dev p2p0 scope link"),
        "{routes}"
    );
    let link = in_lab(&lab, &["ip", "link", "show", "p2p0"]);
    assert!(link.contains("mtu 1400") && link.contains(",UP"), "{link}");

    // The sysctls were written in the lab, not on the host.
    let sysctl = |key: &str| in_lab(&lab, &["cat", &format!("/proc/sys/net/ipv4/conf/{key}")]);
    assert_eq!(sysctl("all/rp_filter").trim(), "0");
    assert_eq!(sysctl("p2p0/rp_filter").trim(), "0");
    assert_eq!(sysctl("p2p0/accept_local").trim(), "1");
    assert!(!Path::new("/proc/sys/net/ipv4/conf/p2p0").exists());
    let in_thread =
        lab.run_in(|| std::fs::read_to_string("/proc/sys/net/ipv4/conf/p2p0/accept_local"))??;
    assert_eq!(in_thread.trim(), "1");

    // A connection between two nodes now leaves through the TUN device ...
    let listener = lab.run_in(|| TcpListener::bind((b, 0)))??;
    listener.set_nonblocking(true)?;
    let to_b = SocketAddrV4::new(b, listener.local_addr()?.port());
    let _client = lab.run_in(|| tcp_from(a, to_b, false))??;
    let syn = next_tcp_packet(&mut tun, Duration::from_secs(1)).expect("a packet within 1 s");
    assert_eq!(tcp_summary(&syn), (a, b, SYN), "the SYN of {a} -> {b}");

    // ... and what is written back into it is delivered locally: relaying every packet
    // completes the handshake (SYN-ACK and ACK also pass through the TUN device).
    tun.write_all(&syn)?;
    let syn_ack = next_tcp_packet(&mut tun, Duration::from_secs(1)).expect("a SYN-ACK");
    assert_eq!(tcp_summary(&syn_ack), (b, a, SYN | ACK));
    tun.write_all(&syn_ack)?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let (_served, peer) = loop {
        if let Some(packet) = next_tcp_packet(&mut tun, Duration::from_millis(10)) {
            tun.write_all(&packet)?;
        }
        match listener.accept() {
            Ok(accepted) => break accepted,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock)
            }
            Err(e) => panic!("no connection through the hairpin: {e}"),
        }
    };
    assert_eq!(peer.ip(), a);

    // Installing again keeps the moved local rule and refuses the duplicate hairpin rule.
    let again = lab
        .install_hairpin("p2p0", Ipv4Addr::new(10, 88, 0, 0), 16, 1400)
        .unwrap_err();
    assert!(again.to_string().contains("add rule"), "{again}");
    drop(tun);
    lab.remove()?;
    Ok(())
}

#[test]
fn dropping_the_lab_kills_its_recorded_processes() -> TestResult {
    if !privileged() {
        return Ok(());
    }
    let lab = LabNamespace::create("t-procs")?;
    let mut kept = sleep_in(&lab)?;
    let mut forgotten = sleep_in(&lab)?;
    lab.record_pid(kept.id())?;
    lab.record_pid(forgotten.id())?;
    lab.forget_pid(forgotten.id())?;
    assert_eq!(Ledger::read(lab.ledger_path())?.pids, vec![kept.id()]);
    let pids = run("ip", &["netns", "pids", lab.name()]);
    assert!(
        pids.lines().any(|l| l.trim() == kept.id().to_string()),
        "{pids}"
    );

    let started = Instant::now();
    drop(lab);
    println!("lab with 2 processes removed in {:?}", started.elapsed());
    // Both die: the recorded one by pid, the forgotten one found in /proc.
    for child in [&mut kept, &mut forgotten] {
        let status = wait_briefly(child).expect("killed with the lab");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
    Ok(())
}

#[test]
fn cleanup_removes_labs_of_dead_owners_and_nothing_else() -> TestResult {
    if !privileged() {
        return Ok(());
    }
    let live = LabNamespace::create("t-clean-live")?;
    let mut live_child = sleep_in(&live)?;
    live.record_pid(live_child.id())?;

    // A crashed owner: its ledger names a pid that no longer runs.
    let crashed = LabNamespace::create("t-clean-dead")?;
    let mut orphan_child = sleep_in(&crashed)?;
    crashed.record_pid(orphan_child.id())?;
    let mut ledger = Ledger::read(crashed.ledger_path())?;
    ledger.owner_pid = dead_pid();
    ledger.write(crashed.ledger_path())?;

    // A recycled pid: the owner pid runs, but it started at another time.
    let recycled = LabNamespace::create("t-clean-recycled")?;
    let mut ledger = Ledger::read(recycled.ledger_path())?;
    ledger.owner_start_time += 1;
    ledger.write(recycled.ledger_path())?;

    // A namespace named for a dead owner, with no ledger at all.
    let nameless = format!("p2plab-{}-t-clean-noledger", dead_pid());
    run("ip", &["netns", "add", &nameless]);

    let removed = netns::cleanup_leftovers()?;
    println!("cleanup removed {removed:?}");
    for lab in [crashed.name(), recycled.name(), nameless.as_str()] {
        assert!(removed.iter().any(|r| r == lab), "{lab} not in {removed:?}");
        assert!(!netns_listed(lab), "{lab} still listed");
    }
    assert!(!crashed.ledger_path().exists());
    assert!(!recycled.ledger_path().exists());
    let status = wait_briefly(&mut orphan_child).expect("orphan killed by cleanup");
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    // The live lab of this process is untouched.
    assert!(!removed.iter().any(|r| r == live.name()));
    assert!(netns_listed(live.name()));
    assert!(live.ledger_path().exists());
    assert_eq!(
        live_child.try_wait()?,
        None,
        "a live lab's process was killed"
    );

    // Removing what cleanup already removed is fine.
    crashed.remove()?;
    recycled.remove()?;
    drop(live);
    assert!(wait_briefly(&mut live_child).is_some());
    Ok(())
}

/// What a thread inside the lab sees: `/proc/sys/net` and `/proc/thread-self/net` are the
/// lab's, while `/proc/net` (the process's main thread) and `/sys/class/net` (whoever mounted
/// sysfs) still show the host.
#[test]
fn proc_sys_net_follows_the_thread_that_opens_it() -> TestResult {
    if !privileged() {
        return Ok(());
    }
    let ttl = "/proc/sys/net/ipv4/ip_default_ttl";
    let host_ttl = std::fs::read_to_string(ttl)?;
    let lab = LabNamespace::create("t-procsys")?;
    lab.write_sysctl("net/ipv4/ip_default_ttl", "77")?;
    assert_eq!(
        std::fs::read_to_string(ttl)?,
        host_ttl,
        "the host's sysctl changed"
    );
    assert_eq!(in_lab(&lab, &["cat", ttl]).trim(), "77");
    let (lab_ttl, thread_net) = lab.run_in(|| {
        (
            std::fs::read_to_string(ttl),
            std::fs::read_to_string("/proc/thread-self/net/dev"),
        )
    })?;
    assert_eq!(lab_ttl?.trim(), "77");
    let interfaces: Vec<String> = thread_net?
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split(':').next()?.trim().to_string()))
        .collect();
    assert_eq!(interfaces, ["lo"]);
    Ok(())
}
