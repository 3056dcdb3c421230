//! The shim against programs no one here wrote (python3, curl, sh, iperf3), each test in a
//! network namespace of its own with two node addresses on `lo`: 10.99.0.1 and 10.99.0.2.
//!
//! Needs root (network namespaces): otherwise each test prints `skipping: ...`, and fails under
//! `CI=true`. Programs run as `ip netns exec NS timeout N env LD_PRELOAD=<shim> BINDIP=<ip> ...`,
//! in a process group of their own that the test kills on drop, like the namespace it deletes.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const NODE1: &str = "10.99.0.1";
const NODE2: &str = "10.99.0.2";
const SHIM_FILE: &str = "libp2plab_shim.so";

// ---------------------------------------------------------------------------------------------
// Fixture

/// A network namespace with NODE1 and NODE2 on `lo`, and a scratch folder; both removed on drop.
struct Lab {
    ns: String,
    dir: PathBuf,
    shim: PathBuf,
    python: PathBuf,
}

/// How a program is started: with `BINDIP` set to a value, or without it (the shim is always
/// preloaded).
#[derive(Clone, Copy)]
enum Bind<'a> {
    To(&'a str),
    Unset,
}

impl Lab {
    /// The lab for `test`, or `None` (after saying why) when this machine cannot run it.
    fn new(test: &str) -> Option<Lab> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return skip(test, "needs root to create network namespaces");
        }
        for program in ["ip", "curl", "iperf3", "timeout"] {
            if Command::new(program).arg("-V").output().is_err() {
                return skip(test, &format!("{program} is not installed"));
            }
        }
        let Some(python) = python() else {
            return skip(test, "python3 is not installed");
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let ns = format!("p2plab-shimtest-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&ns);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        let lab = Lab {
            ns,
            dir,
            shim: shim(),
            python,
        };
        ip(&["netns", "add", &lab.ns]);
        ip(&["-n", &lab.ns, "link", "set", "lo", "up"]);
        for node in [NODE1, NODE2] {
            ip(&[
                "-n",
                &lab.ns,
                "addr",
                "add",
                &format!("{node}/32"),
                "dev",
                "lo",
            ]);
        }
        Some(lab)
    }

    /// `argv` in the namespace, with the shim, for at most `secs` seconds.
    fn command(&self, bind: Bind, secs: u32, argv: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.ns,
            "timeout",
            "-k",
            "5",
            &secs.to_string(),
        ])
        .args(["env", "-u", "BINDIP", "-u", "LD_PRELOAD"])
        .arg(format!("LD_PRELOAD={}", self.shim.display()));
        if let Bind::To(ip) = bind {
            cmd.arg(format!("BINDIP={ip}"));
        }
        let program = match argv.first() {
            Some(&"python3") => self.python.to_str().expect("python path"),
            Some(program) => program,
            None => panic!("empty command"),
        };
        cmd.arg(program)
            .args(argv.get(1..).unwrap_or_default())
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .process_group(0);
        cmd
    }

    /// Runs a client to completion (at most 60 s) and returns its stdout; panics if it failed.
    fn run(&self, bind: Bind, argv: &[&str]) -> String {
        let out = self.output(bind, argv);
        assert!(
            out.status.success(),
            "{argv:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn output(&self, bind: Bind, argv: &[&str]) -> Output {
        self.command(bind, 60, argv).output().expect("start client")
    }

    /// Starts a server (killed on drop, or after 120 s whatever happens) logging to `name`.
    fn spawn(&self, bind: Bind, name: &str, argv: &[&str]) -> Server {
        let log = self.dir.join(name);
        let file = File::create(&log).expect("server log");
        let child = self
            .command(bind, 120, argv)
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("start server");
        Server { child, log }
    }

    /// A TCP connection from the test itself (no shim) to `addr` inside the namespace.
    fn connect(&self, addr: &str) -> io::Result<()> {
        let path = format!("/run/netns/{}", self.ns);
        let addr: SocketAddr = addr.parse().expect("socket address");
        std::thread::spawn(move || {
            let ns = File::open(path)?;
            // SAFETY: a valid namespace fd; this thread alone moves and then ends.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map(drop)
        })
        .join()
        .expect("connect thread")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A program started by a test: its process group is killed and reaped on drop.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Waits until the server has a socket on `port` (TCP listening or UDP bound), read from
    /// its namespace's `/proc/PID/net/*` so that no probe connection disturbs it.
    fn wait_bound(&mut self, port: u16) {
        let pid = self.child.id();
        let port = format!(":{port:04X}");
        self.wait_until(&format!("a socket on {port}"), || {
            [("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")]
                .iter()
                .any(|(table, state)| {
                    let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}"));
                    text.unwrap_or_default().lines().skip(1).any(|line| {
                        let cols: Vec<&str> = line.split_whitespace().collect();
                        cols.get(1).is_some_and(|local| local.ends_with(&port))
                            && cols.get(3) == Some(state)
                    })
                })
        });
    }

    /// Waits until the server's output contains `needle`, and returns the output.
    fn wait_log(&mut self, needle: &str) -> String {
        let log = self.log.clone();
        self.wait_until(&format!("{needle:?} in its output"), || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(needle)
        });
        self.log()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_until(&mut self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let exited = self.child.try_wait().ok().flatten();
            // Checked after `try_wait`: a server that has exited has written all it will.
            if done() {
                return;
            }
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "server never showed {what} (exit: {exited:?}); its output:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the process group this test created for its own child.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn skip(test: &str, why: &str) -> Option<Lab> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why} (CI=true: shim tests must run)");
    }
    println!("skipping: {test}: {why}");
    None
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The real python3 executable (not a wrapper script such as pyenv's), found once.
fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let out = Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .ok()?;
            let path = String::from_utf8(out.stdout).ok()?;
            out.status.success().then(|| PathBuf::from(path.trim()))
        })
        .clone()
}

/// The shim library of this build, in the nearest folder above this test binary: cargo builds
/// the library before the integration tests into `target/<profile>/deps/`, where the test
/// binary lives too (`target/<profile>/` has the copy of the last `cargo build`). Built with
/// `cargo build -p p2plab-shim` if missing.
fn shim() -> PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let find = || {
            exe.ancestors()
                .map(|d| d.join(SHIM_FILE))
                .find(|p| p.is_file())
        };
        if let Some(found) = find() {
            return found;
        }
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "p2plab-shim"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p p2plab-shim failed");
        find().unwrap_or_else(|| panic!("{SHIM_FILE} not found above {}", exe.display()))
    })
    .clone()
}

fn refused(result: io::Result<()>) -> bool {
    matches!(result, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused)
}

fn contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected {needle:?} in:\n{haystack}"
    );
}

const CURL_LOCAL_IP: &[&str] = &[
    "curl",
    "-sS",
    "--max-time",
    "10",
    "-o",
    "/dev/null",
    "-w",
    "%{local_ip}",
];

fn curl(url: &str) -> Vec<&str> {
    CURL_LOCAL_IP.iter().copied().chain([url]).collect()
}

/// A python3 one-shot web server on NODE1:8000 (no bind option), ready.
fn web_server(lab: &Lab) -> Server {
    let mut server = lab.spawn(
        Bind::To(NODE1),
        "http.log",
        &["python3", "-m", "http.server", "8000"],
    );
    server.wait_bound(8000);
    server
}

// ---------------------------------------------------------------------------------------------
// Servers

#[test]
fn a_server_without_bind_option_listens_on_its_node_only() {
    let Some(lab) = Lab::new("a_server_without_bind_option_listens_on_its_node_only") else {
        return;
    };
    let _server = web_server(&lab);
    lab.connect("10.99.0.1:8000")
        .expect("reachable at its node address");
    assert!(
        refused(lab.connect("10.99.0.2:8000")),
        "not at the other node's"
    );
}

#[test]
fn a_dual_stack_server_is_narrowed_to_its_node() {
    let Some(lab) = Lab::new("a_dual_stack_server_is_narrowed_to_its_node") else {
        return;
    };
    let argv = ["python3", "-m", "http.server", "--bind", "::", "8000"];
    let mut server = lab.spawn(Bind::To(NODE1), "http.log", &argv);
    server.wait_bound(8000);
    lab.connect("10.99.0.1:8000")
        .expect("reachable at its node address");
    assert!(
        refused(lab.connect("10.99.0.2:8000")),
        "not at the other node's"
    );
    let from = lab.run(Bind::To(NODE2), &curl("http://10.99.0.1:8000/"));
    assert_eq!(from, NODE2);
    contains(&server.wait_log("GET /"), "::ffff:10.99.0.2 - -");
}

// ---------------------------------------------------------------------------------------------
// Clients

#[test]
fn curl_connects_from_its_node() {
    let Some(lab) = Lab::new("curl_connects_from_its_node") else {
        return;
    };
    let mut server = web_server(&lab);
    let from = lab.run(Bind::To(NODE2), &curl("http://10.99.0.1:8000/"));
    assert_eq!(from, NODE2, "curl's own view of its source");
    contains(&server.wait_log("GET /"), "10.99.0.2 - -");
}

#[test]
fn a_child_forked_by_a_shell_connects_from_its_node() {
    let Some(lab) = Lab::new("a_child_forked_by_a_shell_connects_from_its_node") else {
        return;
    };
    let mut server = web_server(&lab);
    let script = format!("{} http://10.99.0.1:8000/", CURL_LOCAL_IP.join(" "));
    let from = lab.run(Bind::To(NODE2), &["sh", "-c", &script]);
    assert_eq!(from, NODE2);
    contains(&server.wait_log("GET /"), "10.99.0.2 - -");
}

#[test]
fn a_forked_child_without_exec_connects_from_its_node() {
    let Some(lab) = Lab::new("a_forked_child_without_exec_connects_from_its_node") else {
        return;
    };
    let _server = web_server(&lab);
    let script = r#"
import os, socket
pid = os.fork()
if pid == 0:
    s = socket.create_connection(("10.99.0.1", 8000), timeout=5)
    print("child", s.getsockname()[0], flush=True)
    os._exit(0)
os.waitpid(pid, 0)
s = socket.create_connection(("10.99.0.1", 8000), timeout=5)
print("parent", s.getsockname()[0])
"#;
    let out = lab.run(Bind::To(NODE2), &["python3", "-c", script]);
    assert_eq!(out, "child 10.99.0.2\nparent 10.99.0.2\n");
}

const UDP_ECHO: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 9000))
while True:
    data, peer = s.recvfrom(100)
    print(data.decode(), "from", peer[0])
    s.sendto(data, peer)
"#;

const UDP_CLIENT: &str = r#"
import ctypes, socket
NODE1 = ("10.99.0.1", 9000)

def udp():
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

def show(name, s):
    s.settimeout(5)
    data, peer = s.recvfrom(100)
    print(name, "from", s.getsockname()[0], "echo from", peer[0])

a = udp()
a.sendto(b"sendto", NODE1)
show("sendto", a)

b = udp()
b.sendmsg([b"sendmsg"], [], 0, NODE1)
show("sendmsg", b)

# Python has no sendmmsg: call the C library's (the shim's, as it comes first).
class sockaddr_in(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_uint16),
                ("addr", ctypes.c_uint8 * 4), ("zero", ctypes.c_uint8 * 8)]
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
libc = ctypes.CDLL(None, use_errno=True)
dest = sockaddr_in(socket.AF_INET, socket.htons(9000), (ctypes.c_uint8 * 4)(10, 99, 0, 1))
buf = ctypes.create_string_buffer(b"sendmmsg")
iov = iovec(ctypes.cast(buf, ctypes.c_void_p), 8)
msgs = (mmsghdr * 1)()
msgs[0].hdr.name = ctypes.cast(ctypes.pointer(dest), ctypes.c_void_p)
msgs[0].hdr.namelen = ctypes.sizeof(dest)
msgs[0].hdr.iov = ctypes.pointer(iov)
msgs[0].hdr.iovlen = 1
c = udp()
assert libc.sendmmsg(c.fileno(), msgs, 1, 0) == 1, ctypes.get_errno()
show("sendmmsg", c)

d = udp()
d.sendto(b"x", ("127.0.0.1", 9))
print("loopback from", d.getsockname()[0])
"#;

#[test]
fn datagrams_from_an_unbound_socket_leave_from_its_node() {
    let Some(lab) = Lab::new("datagrams_from_an_unbound_socket_leave_from_its_node") else {
        return;
    };
    let mut echo = lab.spawn(Bind::To(NODE1), "echo.log", &["python3", "-c", UDP_ECHO]);
    echo.wait_bound(9000);
    let out = lab.run(Bind::To(NODE2), &["python3", "-c", UDP_CLIENT]);
    for call in ["sendto", "sendmsg", "sendmmsg"] {
        contains(
            &out,
            &format!("{call} from 10.99.0.2 echo from 10.99.0.1\n"),
        );
        contains(&echo.wait_log(call), &format!("{call} from 10.99.0.2\n"));
    }
    contains(&out, "loopback from 0.0.0.0\n");
}

// ---------------------------------------------------------------------------------------------
// errno and failures

const ERRNO_CLIENT: &str = r#"
import ctypes, errno, socket
libc = ctypes.CDLL(None, use_errno=True)

try:
    socket.create_connection(("10.99.0.1", 9), timeout=5)
    print("connected to a closed port?")
except ConnectionRefusedError:
    print("refused")

s = socket.socket()
s.setblocking(False)
print("nonblocking", errno.errorcode[s.connect_ex(("10.99.0.1", 9))], s.getsockname()[0])

try:
    socket.socket().bind(("10.99.0.3", 0))
except OSError as e:
    print("bind", errno.errorcode[e.errno])

l = socket.socket()
ctypes.set_errno(4242)
rc = libc.listen(l.fileno(), 5)
print("listen", rc, ctypes.get_errno(), l.getsockname()[0])

class sockaddr_in6(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_uint16),
                ("flowinfo", ctypes.c_uint32), ("addr", ctypes.c_uint8 * 16),
                ("scope", ctypes.c_uint32)]
mapped = (ctypes.c_uint8 * 16)(*([0] * 10 + [255, 255, 10, 99, 0, 2]))
to_listener = sockaddr_in6(socket.AF_INET6, socket.htons(l.getsockname()[1]), 0, mapped, 0)
c = socket.socket(socket.AF_INET6)
ctypes.set_errno(4242)
rc = libc.connect(c.fileno(), ctypes.byref(to_listener), ctypes.sizeof(to_listener))
print("connect6", rc, ctypes.get_errno(), c.getsockname()[0])

with open("/dev/null") as f:
    ctypes.set_errno(0)
    rc = libc.connect(f.fileno(), ctypes.byref(to_listener), ctypes.sizeof(to_listener))
    print("not a socket", rc, errno.errorcode[ctypes.get_errno()])
"#;

#[test]
fn callers_see_the_real_calls_errno() {
    let Some(lab) = Lab::new("callers_see_the_real_calls_errno") else {
        return;
    };
    let out = lab.run(Bind::To(NODE2), &["python3", "-c", ERRNO_CLIENT]);
    let expected = "refused\n\
                    nonblocking EINPROGRESS 10.99.0.2\n\
                    bind EADDRNOTAVAIL\n\
                    listen 0 4242 10.99.0.2\n\
                    connect6 0 4242 ::ffff:10.99.0.2\n\
                    not a socket -1 ENOTSOCK\n";
    assert_eq!(out, expected);
}

#[test]
fn a_node_address_missing_from_the_machine_fails_closed() {
    let Some(lab) = Lab::new("a_node_address_missing_from_the_machine_fails_closed") else {
        return;
    };
    let script = r#"
import errno, socket
for kind, call in [(socket.SOCK_STREAM, "connect"), (socket.SOCK_DGRAM, "sendto")]:
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.connect(("10.99.0.1", 9)) if call == "connect" else s.sendto(b"x", ("10.99.0.1", 9))
        print(call, "left from", s.getsockname()[0])
    except OSError as e:
        print(call, errno.errorcode[e.errno])
"#;
    let out = lab.run(Bind::To("10.99.0.3"), &["python3", "-c", script]);
    assert_eq!(out, "connect EADDRNOTAVAIL\nsendto EADDRNOTAVAIL\n");
}

#[test]
fn without_a_valid_bindip_programs_run_unchanged() {
    let Some(lab) = Lab::new("without_a_valid_bindip_programs_run_unchanged") else {
        return;
    };
    let mut unset = lab.spawn(
        Bind::Unset,
        "unset.log",
        &["python3", "-m", "http.server", "8000"],
    );
    let mut invalid = lab.spawn(
        Bind::To("not-an-address"),
        "invalid.log",
        &["python3", "-m", "http.server", "8001"],
    );
    unset.wait_bound(8000);
    invalid.wait_bound(8001);
    for addr in [
        "10.99.0.1:8000",
        "10.99.0.2:8000",
        "10.99.0.1:8001",
        "10.99.0.2:8001",
    ] {
        lab.connect(addr)
            .unwrap_or_else(|e| panic!("{addr}: the wildcard listener is kept ({e})"));
    }
    let from = lab.run(Bind::Unset, &curl("http://10.99.0.2:8000/"));
    assert_eq!(from, NODE2, "the kernel's choice for a local destination");
    let from = lab.run(Bind::To("0.0.0.0"), &curl("http://10.99.0.1:8001/"));
    assert_eq!(from, NODE1, "the kernel's choice for a local destination");
}

// ---------------------------------------------------------------------------------------------
// iperf3, without -B on either end

#[test]
fn iperf3_peers_see_each_others_node_address() {
    let Some(lab) = Lab::new("iperf3_peers_see_each_others_node_address") else {
        return;
    };
    for (test, extra) in [("tcp", None), ("udp", Some("-u"))] {
        let log = format!("iperf3-{test}.log");
        let server_argv = ["iperf3", "-s", "-1", "-p", "5201", "--forceflush"];
        let mut server = lab.spawn(Bind::To(NODE1), &log, &server_argv);
        server.wait_bound(5201);
        let mut client = vec!["iperf3", "-c", NODE1, "-p", "5201", "-t", "1"];
        client.extend(extra);
        let out = lab.run(Bind::To(NODE2), &client);
        contains(&out, "local 10.99.0.2 port");
        contains(&out, "connected to 10.99.0.1 port 5201");
        let log = server.wait_log("connected to");
        contains(&log, "Accepted connection from 10.99.0.2");
        contains(&log, "local 10.99.0.1 port 5201 connected to 10.99.0.2");
    }
}
