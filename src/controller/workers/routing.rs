//! Where each action goes: to the worker that hosts its node, or to every worker when every
//! data plane must know it (nodes, shapes, group links, failures), waited for or pipelined;
//! `Wait` is answered from the exits the workers report.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::{SETUP_TIMEOUT, STOP_TIMEOUT, WAIT_STEP, WorkerCounters, Workers};
use base64::Engine;

use crate::experiment::{
    Action, ExecError, Executor, NodeCounters, NodeFile, NodeId, Outcome, ProcExit, ProcId,
    TrafficReading,
};
use crate::proto::{Reply, Request, WireAction};
use crate::units::Nanos;

impl Workers {
    fn owner(&self, node: NodeId) -> Result<usize, ExecError> {
        self.node_worker
            .get(&node)
            .map(|&w| w as usize)
            .ok_or(ExecError::UnknownNode(node.0))
    }

    fn proc_owner(&self, proc: ProcId) -> Result<usize, ExecError> {
        let node = self
            .proc_node
            .get(&proc)
            .ok_or(ExecError::UnknownProc(proc.0))?;
        self.owner(*node)
    }

    fn act_request(action: &Action) -> Request {
        Request::Act {
            action: WireAction::from_action(action)
                .expect("Wait is answered by the controller, never sent"),
        }
    }

    /// Sends an action to one worker and waits for its outcome. A lost worker, once reported,
    /// answers nothing: its processes are out of reach.
    fn act(&mut self, link: usize, action: &Action) -> Result<Outcome, ExecError> {
        if self.links[link].reported {
            return Ok(Outcome::default());
        }
        match self.request(link, Self::act_request(action), None)? {
            Reply::Outcome { outcome } => {
                let mut outcome = Outcome::from(outcome);
                // A worker speaks only of processes the controller started on it.
                outcome
                    .exits
                    .retain(|e| self.proc_node.contains_key(&e.proc));
                Ok(outcome)
            }
            other => Err(self.on_worker(link, ExecError::UnexpectedReply(format!("{other:?}")))),
        }
    }

    /// Sends an action to every worker; `await_link` (the owner) is waited for.
    fn broadcast(
        &mut self,
        action: &Action,
        await_link: Option<usize>,
    ) -> Result<Outcome, ExecError> {
        let mut outcome = Outcome::default();
        for link in 0..self.links.len() {
            if Some(link) == await_link {
                outcome = self.act(link, action)?;
            } else if !self.links[link].reported {
                self.pipeline(link, Self::act_request(action))?;
            }
        }
        Ok(outcome)
    }

    fn wait_exit(&mut self, proc: ProcId) -> Result<Outcome, ExecError> {
        let link = self.proc_owner(proc)?;
        loop {
            let exits = std::mem::take(&mut self.links[link].state.lock().exits);
            self.ready.extend(exits);
            self.ready
                .retain(|(_, e)| self.proc_node.contains_key(&e.proc));
            if let Some(i) = self.ready.iter().position(|(_, e)| e.proc == proc) {
                let (_, exit) = self.ready.remove(i);
                return Ok(Outcome {
                    exits: vec![exit],
                    ..Outcome::default()
                });
            }
            self.check(link)?;
            if self.links[link].reported {
                return Ok(Outcome::default());
            }
            if crate::interrupt::requested() {
                return Err(ExecError::Interrupted);
            }
            std::thread::sleep(WAIT_STEP);
        }
    }
}

impl Executor for Workers {
    fn execute(&mut self, action: &Action) -> Result<Outcome, ExecError> {
        self.check_all()?;
        match action {
            Action::AddNode(node) => {
                if node.worker as usize >= self.links.len() {
                    return Err(ExecError::UnknownWorker(node.worker));
                }
                self.node_worker.insert(node.id, node.worker);
                self.broadcast(action, None)
            }
            Action::Shape { .. }
            | Action::LinkGroups { .. }
            | Action::LinkGroupRow { .. }
            | Action::LoadTrace { .. }
            | Action::Revive { .. } => self.broadcast(action, None),
            Action::FailNode { node, .. } => {
                let owner = self.owner(*node)?;
                self.broadcast(action, Some(owner))
            }
            Action::Limit { node, .. } => {
                let owner = self.owner(*node)?;
                self.act(owner, action)
            }
            Action::Spawn { proc, node, .. } => {
                let owner = self.owner(*node)?;
                self.proc_node.insert(*proc, *node);
                self.act(owner, action)
            }
            Action::Kill { proc } => {
                let owner = self.proc_owner(*proc)?;
                self.act(owner, action)
            }
            // Awaited, so that the grace period the controller waits out starts when the
            // worker has signalled the node's processes.
            Action::Leave { node, .. } => {
                let owner = self.owner(*node)?;
                self.act(owner, action)
            }
            // Only the owner sees both directions of the node's traffic at its access link.
            Action::Capture { node, .. } | Action::StopCapture { node } => {
                let owner = self.owner(*node)?;
                self.act(owner, action)
            }
            Action::Wait { proc } => self.wait_exit(*proc),
        }
    }

    fn drain_exits(&mut self) -> Result<Vec<(Nanos, ProcExit)>, ExecError> {
        let mut exits = std::mem::take(&mut self.ready);
        for link in &self.links {
            exits.append(&mut link.state.lock().exits);
        }
        exits.retain(|(_, e)| self.proc_node.contains_key(&e.proc));
        exits.sort_by_key(|(t, e)| (*t, e.proc));
        let checked = self.check_all();
        if let Err(e) = checked {
            // Keep what arrived: it is recorded at the next call.
            self.ready = exits;
            return Err(e);
        }
        Ok(exits)
    }

    fn traffic(&mut self, interval: bool) -> TrafficReading {
        let mut all: HashMap<Ipv4Addr, NodeCounters> = HashMap::new();
        let mut health = Vec::new();
        for link in 0..self.links.len() {
            if self.is_lost(link) {
                continue;
            }
            // Counters are read whatever a pipelined request met; that error, and a loss
            // noticed here, stay for `finish` to report.
            let stored = self.links[link].state.lock().error.take();
            let reported = self.links[link].reported;
            let reply = self.request(link, Request::Traffic { interval }, Some(SETUP_TIMEOUT));
            self.links[link].reported = reported;
            if let Some(e) = stored {
                self.links[link].state.lock().error.get_or_insert(e);
            }
            if let Ok(Reply::Traffic { nodes, health: h }) = reply {
                for (ip, c) in nodes {
                    all.entry(ip).or_default().add(&c.into());
                }
                if let Some(h) = h {
                    health.push((self.links[link].index, h.into()));
                }
            }
        }
        let mut nodes: Vec<_> = all.into_iter().collect();
        nodes.sort_by_key(|(ip, _)| *ip);
        TrafficReading { nodes, health }
    }

    fn read_node_file(
        &mut self,
        node: NodeId,
        ip: Ipv4Addr,
        file: &NodeFile,
    ) -> Result<Option<Vec<u8>>, ExecError> {
        self.check_all()?;
        let link = self.owner(node)?;
        let request = Request::ReadFile {
            ip,
            file: file.as_str().to_string(),
        };
        match self.request(link, request, None)? {
            Reply::NodeFile { data: None } => Ok(None),
            Reply::NodeFile { data: Some(data) } => base64::engine::general_purpose::STANDARD
                .decode(data)
                .map(Some)
                .map_err(|e| self.on_worker(link, ExecError::UnexpectedReply(e.to_string()))),
            other => Err(self.on_worker(link, ExecError::UnexpectedReply(format!("{other:?}")))),
        }
    }

    fn finish(&mut self) -> Result<(), ExecError> {
        let mut first_error = None;
        for link in 0..self.links.len() {
            if self.links[link].reported {
                continue;
            }
            if self.is_lost(link) {
                first_error.get_or_insert(self.lost_error(link));
                continue;
            }
            // An error a pipelined request met is reported, but the node folders are still
            // collected; then the lab goes.
            let stored = self.links[link].state.lock().error.take();
            if let Some(e) = stored {
                first_error.get_or_insert(self.on_worker(link, e));
            }
            let collected = self
                .request(link, Request::Collect, None)
                .and_then(|_| self.check(link));
            let stopped = self.request(link, Request::Stop, Some(STOP_TIMEOUT));
            self.links[link].stopped = true;
            if let Ok(Reply::Stopped { dataplane }) = &stopped {
                self.dataplane.add(WorkerCounters {
                    worker: self.links[link].index,
                    addr: self.links[link].name.clone(),
                    counters: dataplane.clone(),
                });
            }
            if let Err(e) = collected.and(stopped.map(drop)) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
