//! Cgroup-BPF node binding: a tiny eBPF assembler (`insn`), the raw `bpf(2)` calls (`sys`),
//! the five `sock_addr` programs (`programs`) and their attachment to a lab cgroup (`binding`).
//! It uses nothing else of p2plab; `netns::cgroup` makes the cgroups it attaches to.

pub mod binding;
pub mod insn;
pub mod programs;
pub mod sys;
