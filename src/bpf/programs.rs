//! The five `sock_addr` programs that give a node's sockets the node's address. Each looks the
//! calling task's node cgroup (its ancestor at the node level, so sub-cgroups a program makes
//! stay in its node) up in the node map (u64 cgroup id -> u32 IPv4, network order); a task
//! outside every node cgroup is left alone.

use super::insn::{Asm, AsmError, Insn, R0, R1, R2, R3, R6, R7, R8, R10, Size};

/// `struct bpf_sock_addr` offsets (include/uapi/linux/bpf.h).
pub mod ctx {
    pub const USER_IP4: i16 = 4;
    /// `user_ip6[0..4]`: four u32 words, network order.
    pub const USER_IP6: i16 = 8;
    pub const MSG_SRC_IP4: i16 = 40;
    /// `__bpf_md_ptr(struct bpf_sock *, sk)`: 8-byte aligned after `msg_src_ip6[4]` (44..60).
    pub const SK: i16 = 64;
}

/// `struct bpf_sock` offsets (include/uapi/linux/bpf.h).
pub mod sock {
    pub const SRC_IP4: i16 = 24;
    pub const SRC_IP6: i16 = 28;
    /// Host order; non-zero once the socket has a local port.
    pub const SRC_PORT: i16 = 44;
}

/// Kernel helper numbers (`enum bpf_func_id`).
pub mod helper {
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    /// `long bpf_bind(ctx, struct sockaddr *, int)`: connect4/connect6 hooks only.
    pub const BIND: i32 = 64;
    pub const GET_CURRENT_CGROUP_ID: i32 = 80;
    /// `u64 bpf_get_current_ancestor_cgroup_id(int level)`.
    pub const GET_CURRENT_ANCESTOR_CGROUP_ID: i32 = 123;
}

/// `enum bpf_attach_type` values of the hooks.
pub mod attach {
    pub const INET4_BIND: u32 = 8;
    pub const INET6_BIND: u32 = 9;
    pub const INET4_CONNECT: u32 = 10;
    pub const INET6_CONNECT: u32 = 11;
    pub const UDP4_SENDMSG: u32 = 14;
}

const AF_INET: i32 = 2;
const AF_INET6: i32 = 10;
/// `::ffff:` (word 2 of a v4-mapped address) read as a little-endian u32.
const V4_MAPPED_WORD: i32 = 0xffff_0000_u32 as i32;
const LOOPBACK_FIRST_OCTET: i32 = 127;

/// The socket hooks node binding uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Connect4,
    Bind4,
    Sendmsg4,
    Bind6,
    Connect6,
}

impl Hook {
    pub const ALL: [Hook; 5] = [
        Hook::Connect4,
        Hook::Bind4,
        Hook::Sendmsg4,
        Hook::Bind6,
        Hook::Connect6,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Hook::Connect4 => "p2p_connect4",
            Hook::Bind4 => "p2p_bind4",
            Hook::Sendmsg4 => "p2p_sendmsg4",
            Hook::Bind6 => "p2p_bind6",
            Hook::Connect6 => "p2p_connect6",
        }
    }

    pub fn attach_type(self) -> u32 {
        match self {
            Hook::Connect4 => attach::INET4_CONNECT,
            Hook::Bind4 => attach::INET4_BIND,
            Hook::Sendmsg4 => attach::UDP4_SENDMSG,
            Hook::Bind6 => attach::INET6_BIND,
            Hook::Connect6 => attach::INET6_CONNECT,
        }
    }

    /// The program, referring to the node map by fd.
    pub fn program(self, nodes: NodeMap) -> Result<Vec<Insn>, AsmError> {
        match self {
            Hook::Connect4 => connect4(nodes),
            Hook::Bind4 => bind4(nodes),
            Hook::Sendmsg4 => sendmsg4(nodes),
            Hook::Bind6 => bind6(nodes),
            Hook::Connect6 => connect6(nodes),
        }
    }
}

/// The node map the programs read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeMap {
    /// Map fd: u64 cgroup id -> u32 IPv4 address, network order.
    pub fd: i32,
    /// Level of node cgroups in the cgroup v2 hierarchy (its root is level 0).
    pub level: i32,
}

/// `r8 = address of the calling task's node`, or jump to `miss`. Uses stack -8..-1.
fn node_address(a: &mut Asm, nodes: NodeMap, miss: &'static str) {
    // The ancestor id is 0 (a miss) for tasks above the node level.
    a.mov64_imm(R1, nodes.level)
        .call(helper::GET_CURRENT_ANCESTOR_CGROUP_ID)
        .stx(Size::Dw, R10, -8, R0)
        .ld_map_fd(R1, nodes.fd)
        .mov64_reg(R2, R10)
        .add64_imm(R2, -8)
        .call(helper::MAP_LOOKUP_ELEM)
        .jeq_imm(R0, 0, miss)
        .ldx(Size::W, R8, R0, 0);
}

/// Jumps to `to` when the socket already has a local address or port (an explicit bind, a
/// reconnect, an autobound UDP socket): bpf_bind would refuse it or override the user's choice.
fn skip_if_bound(a: &mut Asm, words: &[i16], to: &'static str) {
    a.ldx(Size::Dw, R7, R6, ctx::SK)
        .ldx(Size::W, R2, R7, sock::SRC_PORT);
    for &off in words {
        a.ldx(Size::W, R3, R7, off).or64_reg(R2, R3);
    }
    a.jne_imm(R2, 0, to);
}

/// `return 1` (let the call proceed) at `allow`.
fn allow_exit(a: &mut Asm) {
    a.label("allow").mov64_imm(R0, 1).exit();
}

/// connect() of an IPv4 socket toward a non-loopback address: bpf_bind the node address (port
/// 0: chosen at connect); refuse the connect (return 0, EPERM) if that fails.
pub fn connect4(nodes: NodeMap) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    a.mov64_reg(R6, R1)
        .ldx(Size::W, R2, R6, ctx::USER_IP4)
        .and64_imm(R2, 0xff)
        .jeq_imm(R2, LOOPBACK_FIRST_OCTET, "allow");
    skip_if_bound(&mut a, &[sock::SRC_IP4], "allow");
    node_address(&mut a, nodes, "allow");
    // struct sockaddr_in at -24: family and port 0, address, 8 zero bytes.
    a.st_imm(Size::W, R10, -24, AF_INET)
        .stx(Size::W, R10, -20, R8)
        .st_imm(Size::Dw, R10, -16, 0)
        .mov64_reg(R1, R6)
        .mov64_reg(R2, R10)
        .add64_imm(R2, -24)
        .mov64_imm(R3, 16)
        .call(helper::BIND)
        .jeq_imm(R0, 0, "allow")
        .mov64_imm(R0, 0)
        .exit();
    allow_exit(&mut a);
    a.finish()
}

/// bind() of an IPv4 socket to 0.0.0.0: bind to the node address instead.
pub fn bind4(nodes: NodeMap) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    a.mov64_reg(R6, R1)
        .ldx(Size::W, R2, R6, ctx::USER_IP4)
        .jne_imm(R2, 0, "allow");
    node_address(&mut a, nodes, "allow");
    a.stx(Size::W, R6, ctx::USER_IP4, R8);
    allow_exit(&mut a);
    a.finish()
}

/// sendto() on an unconnected UDP socket without a source address, toward a non-loopback
/// address: send from the node address.
pub fn sendmsg4(nodes: NodeMap) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    a.mov64_reg(R6, R1)
        .ldx(Size::W, R2, R6, ctx::MSG_SRC_IP4)
        .jne_imm(R2, 0, "allow")
        .ldx(Size::W, R2, R6, ctx::USER_IP4)
        .and64_imm(R2, 0xff)
        .jeq_imm(R2, LOOPBACK_FIRST_OCTET, "allow");
    node_address(&mut a, nodes, "allow");
    a.stx(Size::W, R6, ctx::MSG_SRC_IP4, R8);
    allow_exit(&mut a);
    a.finish()
}

/// bind() of an IPv6 socket to `::`: bind to `::ffff:<node>` instead (IPv4 only, as nodes are;
/// an IPV6_V6ONLY socket then fails with EINVAL: the context does not show that option).
pub fn bind6(nodes: NodeMap) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    a.mov64_reg(R6, R1);
    for word in 0..4 {
        a.ldx(Size::W, R2, R6, ctx::USER_IP6 + 4 * word)
            .jne_imm(R2, 0, "allow");
    }
    node_address(&mut a, nodes, "allow");
    // Words 0 and 1 are already zero; the context takes only register stores.
    a.mov64_imm(R2, V4_MAPPED_WORD)
        .stx(Size::W, R6, ctx::USER_IP6 + 8, R2)
        .stx(Size::W, R6, ctx::USER_IP6 + 12, R8);
    allow_exit(&mut a);
    a.finish()
}

/// connect() of an IPv6 socket toward a v4-mapped non-loopback address: bpf_bind
/// `::ffff:<node>`; refuse the connect if that fails. Native IPv6 destinations are left alone.
pub fn connect6(nodes: NodeMap) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    a.mov64_reg(R6, R1)
        .ldx(Size::W, R2, R6, ctx::USER_IP6)
        .jne_imm(R2, 0, "allow")
        .ldx(Size::W, R2, R6, ctx::USER_IP6 + 4)
        .jne_imm(R2, 0, "allow")
        .ldx(Size::W, R2, R6, ctx::USER_IP6 + 8)
        .jne32_imm(R2, V4_MAPPED_WORD, "allow")
        .ldx(Size::W, R2, R6, ctx::USER_IP6 + 12)
        .and64_imm(R2, 0xff)
        .jeq_imm(R2, LOOPBACK_FIRST_OCTET, "allow");
    let src_ip6: Vec<i16> = (0..4).map(|w| sock::SRC_IP6 + 4 * w).collect();
    skip_if_bound(&mut a, &src_ip6, "allow");
    node_address(&mut a, nodes, "allow");
    // struct sockaddr_in6 (28 bytes) at -32: family and port 0, flowinfo 0, ::ffff:<node>,
    // scope_id 0 (the key at -8 is no longer needed).
    a.st_imm(Size::W, R10, -32, AF_INET6)
        .st_imm(Size::W, R10, -28, 0)
        .st_imm(Size::Dw, R10, -24, 0)
        .st_imm(Size::W, R10, -16, V4_MAPPED_WORD)
        .stx(Size::W, R10, -12, R8)
        .st_imm(Size::Dw, R10, -8, 0)
        .mov64_reg(R1, R6)
        .mov64_reg(R2, R10)
        .add64_imm(R2, -32)
        .mov64_imm(R3, 28)
        .call(helper::BIND)
        .jeq_imm(R0, 0, "allow")
        .mov64_imm(R0, 0)
        .exit();
    allow_exit(&mut a);
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_assembles_and_ends_in_exit() {
        for hook in Hook::ALL {
            let insns = hook.program(NodeMap { fd: 3, level: 2 }).unwrap();
            assert_eq!(insns.last().map(|i| i.code), Some(0x95), "{hook:?}");
        }
    }

    #[test]
    fn v4_mapped_word_is_00_00_ff_ff_in_memory() {
        assert_eq!((V4_MAPPED_WORD as u32).to_le_bytes(), [0, 0, 0xff, 0xff]);
    }

    #[test]
    fn programs_refer_to_the_given_map() {
        let insns = Hook::Bind4.program(NodeMap { fd: 42, level: 2 }).unwrap();
        assert!(
            insns
                .iter()
                .any(|i| i.code == 0x18 && i.src == 1 && i.imm == 42)
        );
    }
}
