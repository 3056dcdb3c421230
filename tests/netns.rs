//! Lab namespaces on the real kernel, set up the way the worker sets them up: creation as
//! `ip netns` sees it, the node block made local by one AnyIP route, the rest of the lab prefix
//! unreachable, the hairpin into a TUN device, signals to a node's process groups, removal with
//! the lab's processes, and `p2plab cleanup`. These need root: without it they print why they
//! skip, except under `CI=true`.

mod common;

use std::error::Error;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
use p2plab::dataplane::TunDevice;
use p2plab::netns::{self, LabNamespace, Ledger, NetnsError};

use common::{alive, can_run_real_mode};

type TestResult = Result<(), Box<dyn Error>>;

/// How long any awaited event may take before the test fails: generous, since the machine is
/// shared; a passing test waits only as long as the event takes.
const PATIENCE: Duration = Duration::from_secs(5);

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
    let mut flags = SockFlag::SOCK_CLOEXEC;
    if !blocking {
        flags |= SockFlag::SOCK_NONBLOCK;
    }
    let fd = socket(AddressFamily::Inet, SockType::Stream, flags, None)?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(src, 0)))?;
    match connect(fd.as_raw_fd(), &SockaddrIn::from(dst)) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(fd),
        Err(e) => Err(e.into()),
    }
}

/// The next IPv4 TCP packet read from `tun` within `within` (other packets, such as IPv6
/// router solicitations, are skipped).
fn next_tcp_packet(tun: &TunDevice, within: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let n = match tun.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(e) => panic!("read the TUN device: {e}"),
        };
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

/// `cmd` set to start inside the lab namespace, as the worker's spawner does (`setns` with
/// the lab's descriptor, before exec).
fn in_lab_cmd(lab: &LabNamespace, mut cmd: Command) -> Command {
    let fd = lab.ns_fd();
    // SAFETY: between fork and exec only setns(2) runs, which is async-signal-safe and does
    // not allocate; `fd` is the lab's descriptor, open until the lab (which outlives every
    // spawn here) is dropped.
    unsafe {
        cmd.pre_exec(move || {
            setns(BorrowedFd::borrow_raw(fd), CloneFlags::CLONE_NEWNET)?;
            Ok(())
        });
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// `sleep 100` started inside the lab namespace.
fn sleep_in(lab: &LabNamespace) -> std::io::Result<Child> {
    let mut cmd = Command::new("sleep");
    cmd.arg("100");
    in_lab_cmd(lab, cmd).spawn()
}

/// Waits up to `PATIENCE` for `child` to end; its exit status.
fn wait_briefly(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + PATIENCE;
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
    if !can_run_real_mode("create_is_seen_by_ip_netns_and_drop_removes_it") {
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

/// The worker's node block: one `local 10.k.0.0/16 dev lo` route makes every address of it a
/// node address, and the rest of 10.0.0.0/8 is unreachable.
#[test]
fn one_local_route_makes_the_block_local_and_the_rest_unreachable() -> TestResult {
    if !can_run_real_mode("one_local_route_makes_the_block_local_and_the_rest_unreachable") {
        return Ok(());
    }
    let lab = LabNamespace::create("t-block")?;
    lab.bring_up_loopback()?;
    let mut nl = lab.netlink()?;
    let lo = nl.ifindex("lo")?;
    nl.add_local_route(Ipv4Addr::new(10, 77, 0, 0), 16, lo)?;
    nl.add_unreachable_route(Ipv4Addr::new(10, 0, 0, 0), 8)?;

    let local = in_lab(&lab, &["ip", "route", "show", "table", "local"]);
    assert!(
        local.contains("local 10.77.0.0/16 dev lo scope host"),
        "{local}"
    );
    let main = in_lab(&lab, &["ip", "route", "show"]);
    assert!(main.contains("unreachable 10.0.0.0/8"), "{main}");
    // No address per node: lo keeps only 127.0.0.1.
    let addrs = in_lab(&lab, &["ip", "-4", "-o", "addr", "show", "dev", "lo"]);
    assert_eq!(addrs.lines().count(), 1, "{addrs}");

    // Adding either again is an error that names the operation.
    let again = nl
        .add_local_route(Ipv4Addr::new(10, 77, 0, 0), 16, lo)
        .unwrap_err();
    assert!(again.to_string().contains("add local route"), "{again}");
    assert!(matches!(again, NetnsError::Netlink { errno, .. } if errno == libc::EEXIST));
    let again = nl
        .add_unreachable_route(Ipv4Addr::new(10, 0, 0, 0), 8)
        .unwrap_err();
    assert!(
        again.to_string().contains("add unreachable route"),
        "{again}"
    );
    // A request for an interface that does not exist fails with ENODEV, and the client keeps
    // working after errors.
    assert!(matches!(
        nl.ifindex("p2p9"),
        Err(NetnsError::Netlink { errno, .. }) if errno == libc::ENODEV
    ));
    assert_eq!(nl.ifindex("lo")?, lo);

    // A listener on the first node of the block, made inside the lab, stays there; a connection
    // from the block's last node reaches it.
    let (a, b) = (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 255, 254));
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

    // An address of the lab prefix outside the block fails at once, not after a timeout.
    let outside = SocketAddr::from((Ipv4Addr::new(10, 99, 0, 1), 9));
    let refused = lab
        .run_in(|| TcpStream::connect_timeout(&outside, PATIENCE))?
        .unwrap_err();
    assert!(
        matches!(
            refused.kind(),
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable
        ),
        "{refused}"
    );

    // The host has none of it.
    assert!(TcpListener::bind((a, 0)).is_err());
    Ok(())
}

#[test]
fn hairpin_steers_traffic_between_nodes_into_the_tun() -> TestResult {
    if !can_run_real_mode("hairpin_steers_traffic_between_nodes_into_the_tun") {
        return Ok(());
    }
    // The worker's order: lo up, TUN, hairpin, local route for the block, unreachable rest.
    let lab = LabNamespace::create("t-hairpin")?;
    lab.bring_up_loopback()?;
    let (a, b) = (Ipv4Addr::new(10, 88, 0, 1), Ipv4Addr::new(10, 88, 3, 7));
    assert!(matches!(
        lab.install_hairpin("p2p0", Ipv4Addr::new(10, 88, 0, 0), 16, 1400),
        Err(NetnsError::NoSuchInterface { .. })
    ));
    let tun = lab.run_in(|| TunDevice::create("p2p0", false))??;
    // Host bits in the prefix are masked off.
    lab.install_hairpin("p2p0", Ipv4Addr::new(10, 88, 1, 2), 16, 1400)?;
    // Another worker's block goes into the same TUN device.
    lab.install_hairpin("p2p0", Ipv4Addr::new(10, 89, 0, 0), 16, 1400)?;
    let mut nl = lab.netlink()?;
    let lo = nl.ifindex("lo")?;
    nl.add_local_route(Ipv4Addr::new(10, 88, 0, 0), 16, lo)?;
    nl.add_unreachable_route(Ipv4Addr::new(10, 0, 0, 0), 8)?;

    let rules = in_lab(&lab, &["ip", "rule", "show"]);
    for block in ["10.88.0.0/16", "10.89.0.0/16"] {
        let rule = format!("100:\tfrom all to {block} iif lo lookup 100");
        assert!(rules.contains(&rule), "{rules}");
    }
    assert!(rules.contains("1000:\tfrom all lookup local"), "{rules}");
    assert!(!rules.lines().any(|l| l.starts_with("0:")), "{rules}");
    let routes = in_lab(&lab, &["ip", "route", "show", "table", "100"]);
    for block in ["10.88.0.0/16", "10.89.0.0/16"] {
        let route = format!("{block} dev p2p0 scope link");
        assert!(routes.contains(&route), "{routes}");
    }
    let link = in_lab(&lab, &["ip", "link", "show", "p2p0"]);
    assert!(link.contains("mtu 1400") && link.contains(",UP"), "{link}");
    assert!(link.contains("qlen 4096"), "{link}");

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
    let syn = next_tcp_packet(&tun, PATIENCE).expect("the SYN in the TUN device");
    assert_eq!(tcp_summary(&syn), (a, b, SYN), "the SYN of {a} -> {b}");

    // ... and what is written back into it is delivered locally: relaying every packet
    // completes the handshake (SYN-ACK and ACK also pass through the TUN device).
    tun.write(&syn)?;
    let syn_ack = next_tcp_packet(&tun, PATIENCE).expect("a SYN-ACK");
    assert_eq!(tcp_summary(&syn_ack), (b, a, SYN | ACK));
    tun.write(&syn_ack)?;
    let deadline = Instant::now() + PATIENCE;
    let (_served, peer) = loop {
        if let Some(packet) = next_tcp_packet(&tun, Duration::from_millis(10)) {
            tun.write(&packet)?;
        }
        match listener.accept() {
            Ok(accepted) => break accepted,
            Err(e) if Instant::now() < deadline => assert_eq!(e.kind(), ErrorKind::WouldBlock),
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

/// Processes are found by their namespace in /proc: nothing records them.
#[test]
fn dropping_the_lab_kills_its_processes() -> TestResult {
    if !can_run_real_mode("dropping_the_lab_kills_its_processes") {
        return Ok(());
    }
    let lab = LabNamespace::create("t-procs")?;
    let mut children = [sleep_in(&lab)?, sleep_in(&lab)?];
    let pids = run("ip", &["netns", "pids", lab.name()]);
    for child in &children {
        let pid = child.id().to_string();
        assert!(pids.lines().any(|l| l.trim() == pid), "{pid} in {pids}");
    }

    drop(lab);
    for child in &mut children {
        let status = wait_briefly(child).expect("killed with the lab");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
    Ok(())
}

/// `signal_groups` as the worker uses it to crash or stop a node: every member of the node's
/// process groups inside the lab, even after the group's leader is gone; nothing outside the
/// lab with the same group id, and no other group.
#[test]
fn signal_groups_reaches_the_lab_members_of_a_group_and_nothing_else() -> TestResult {
    if !can_run_real_mode("signal_groups_reaches_the_lab_members_of_a_group_and_nothing_else") {
        return Ok(());
    }
    let lab = LabNamespace::create("t-groups")?;
    // A group whose leader started a background job and exited, as a shell's `cmd &` does.
    let mut shell = Command::new("sh");
    shell.args(["-c", "sleep 100 & echo $!"]);
    let mut leader = in_lab_cmd(&lab, shell)
        .process_group(0)
        .stdout(Stdio::piped())
        .spawn()?;
    let group = leader.id() as i32;
    let mut line = String::new();
    BufReader::new(leader.stdout.take().expect("piped")).read_line(&mut line)?;
    let member: u32 = line.trim().parse()?;
    assert!(leader.wait()?.success());
    assert!(alive(member));
    // The same group id outside the lab, and another group inside it.
    let mut outsider = Command::new("sleep")
        .arg("100")
        .process_group(group)
        .spawn()?;
    let mut bystander = in_lab_cmd(&lab, {
        let mut c = Command::new("sleep");
        c.arg("100");
        c
    })
    .process_group(0)
    .spawn()?;

    lab.signal_groups(&[group], 12345); // no such signal: nothing happens
    assert!(alive(member));
    lab.signal_groups(&[group], libc::SIGTERM);
    let deadline = Instant::now() + PATIENCE;
    while alive(member) {
        assert!(
            Instant::now() < deadline,
            "the group's member {member} outlived SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        outsider.try_wait()?,
        None,
        "a process outside the lab was signalled"
    );
    assert_eq!(bystander.try_wait()?, None, "another group was signalled");
    outsider.kill()?;
    outsider.wait()?;
    drop(lab);
    assert!(wait_briefly(&mut bystander).is_some());
    Ok(())
}

#[test]
fn cleanup_removes_labs_of_dead_owners_and_nothing_else() -> TestResult {
    if !can_run_real_mode("cleanup_removes_labs_of_dead_owners_and_nothing_else") {
        return Ok(());
    }
    let live = LabNamespace::create("t-clean-live")?;
    let mut live_child = sleep_in(&live)?;

    // A crashed owner: its ledger names a pid that no longer runs.
    let crashed = LabNamespace::create("t-clean-dead")?;
    let mut orphan_child = sleep_in(&crashed)?;
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
    if !can_run_real_mode("proc_sys_net_follows_the_thread_that_opens_it") {
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
