//! Every message of the protocol. Frames are JSON objects tagged by `"type"`, so a session
//! can be read with `nc`; requests carry an id that their reply repeats. The wire has its own
//! types (`wire`), converted at the edge, so renaming something inside p2plab never changes
//! the protocol.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::wire::{Counters, Exit, Failure, Health, WireAction, WireOutcome};

/// The handshake, in order: Hello and Noise (controller, in the clear), Noise (worker, in the
/// clear), then sealed: Claim (controller), Welcome (worker). Either side may end it with
/// Refused. `Hello` is the same in every version of p2plab, so that two versions can always
/// tell each other theirs; its nonce only makes every handshake's transcript unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Handshake {
    Hello {
        version: u32,
        nonce: String,
    },
    /// A Noise handshake message, in hex.
    Noise {
        message: String,
    },
    /// The controller asks for the worker, in the first sealed record: only a controller that
    /// holds the token and took part in this very handshake can seal it.
    Claim,
    Welcome {
        worker: String,
    },
    Refused {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    Request { id: u64, body: Request },
    Heartbeat,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// First request of a session: builds the worker's lab.
    Setup(Setup),
    Act {
        action: WireAction,
    },
    /// Every node's totals; with `interval`, also the data plane's health since the last
    /// such request, which this one ends.
    Traffic {
        interval: bool,
    },
    /// One file of a node's folder, for the script (`read_file`): `Reply::NodeFile`.
    ReadFile {
        ip: Ipv4Addr,
        file: String,
    },
    /// Sends every file of the nodes' folders as `File` events, then replies.
    Collect,
    /// Ends the session: processes killed, lab removed, then the reply.
    Stop,
}

impl Request {
    /// The request's name, for log lines.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Setup(_) => "setup",
            Request::Act { action } => action.kind(),
            Request::Traffic { .. } => "traffic",
            Request::ReadFile { .. } => "read_file",
            Request::Collect => "collect",
            Request::Stop => "stop",
        }
    }
}

/// What a worker needs to build its lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// This worker's number: it owns the address block `10.<index>.0.0/16`.
    pub index: u32,
    pub seed: u64,
    pub mtu: u32,
    /// Part of the lab namespace's name.
    pub hint: String,
    /// The run's random id, shared by its workers' data planes.
    pub run: u32,
    /// The run's random data-plane key (hex, 32 bytes), which authenticates every datagram
    /// between its workers. It only ever travels inside the encrypted session.
    pub key: String,
    /// The other workers' data planes.
    pub peers: Vec<Peer>,
    /// How the run asks the lab to bind its programs (`--binding`); absent means auto.
    #[serde(default)]
    pub binding: BindingChoice,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    pub index: u32,
    /// Where its data plane receives encapsulated packets (UDP).
    pub data: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToController {
    Reply {
        id: u64,
        result: Result<Reply, Failure>,
    },
    /// A process ended on its own.
    Exit {
        exit: Exit,
    },
    /// A piece of a node's file, during `Collect`: `path` is relative to the results folder.
    File {
        path: String,
        offset: u64,
        data: String,
    },
    Heartbeat,
    /// The worker ends the session because of what it received, and says why (a record that
    /// failed its integrity check, a malformed message): the last message of a session.
    Abort {
        reason: String,
    },
}

/// How a lab gives its programs' sockets their node's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Binding {
    /// Cgroup-BPF: every program, static and Go binaries too.
    Bpf,
    /// The LD_PRELOAD shim: dynamically linked programs that call libc only.
    Preload,
}

impl Binding {
    /// `"bpf"` or `"preload"`, as `summary.json` says it.
    pub fn name(self) -> &'static str {
        match self {
            Binding::Bpf => "bpf",
            Binding::Preload => "preload",
        }
    }
}

/// The binding a run asks for (`p2plab script --binding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindingChoice {
    /// Cgroup-BPF where the host allows it, the shim elsewhere.
    #[default]
    Auto,
    /// Cgroup-BPF or no lab: the setup fails, saying why, where it cannot be had.
    Bpf,
    /// The shim, even where cgroup-BPF would work.
    Preload,
}

impl BindingChoice {
    /// `"auto"`, `"bpf"` or `"preload"`, as `--binding` and `summary.json` say it.
    pub fn name(self) -> &'static str {
        match self {
            BindingChoice::Auto => "auto",
            BindingChoice::Bpf => "bpf",
            BindingChoice::Preload => "preload",
        }
    }

    /// The choice `name` names, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            BindingChoice::Auto,
            BindingChoice::Bpf,
            BindingChoice::Preload,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Done,
    /// Setup: the lab is built, in this network namespace, binding its programs so.
    Lab {
        namespace: String,
        binding: Binding,
    },
    Outcome {
        outcome: WireOutcome,
    },
    Traffic {
        nodes: Vec<(Ipv4Addr, Counters)>,
        /// Asked with `interval` only.
        health: Option<Health>,
    },
    /// ReadFile: the file's bytes in base64, absent when there is no such file (yet).
    NodeFile {
        data: Option<String>,
    },
    /// Stop: the lab is gone; its data plane's counters by name (packets passed through,
    /// datagrams sent, received, and dropped for each reason), for `summary.json`.
    Stopped {
        dataplane: BTreeMap<String, u64>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_choices_round_trip_their_names() {
        for c in [
            BindingChoice::Auto,
            BindingChoice::Bpf,
            BindingChoice::Preload,
        ] {
            assert_eq!(BindingChoice::from_name(c.name()), Some(c));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.name())
            );
        }
        assert_eq!(BindingChoice::from_name("ebpf"), None);
    }

    #[test]
    fn a_setup_without_binding_asks_for_auto() {
        let json = r#"{"index":0,"seed":1,"mtu":1500,"hint":"h","run":7,"key":"00","peers":[]}"#;
        let setup: Setup = serde_json::from_str(json).unwrap();
        assert_eq!(setup.binding, BindingChoice::Auto);
        let json = json.replace("[]}", r#"[],"binding":"preload"}"#);
        let setup: Setup = serde_json::from_str(&json).unwrap();
        assert_eq!(setup.binding, BindingChoice::Preload);
    }
}
