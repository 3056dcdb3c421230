//! A tiny eBPF assembler: the instruction format of `include/uapi/linux/bpf.h` and a builder
//! with named labels, so programs are written in Rust without any BPF toolchain.

use std::collections::HashMap;

/// One eBPF register number (`r0`..`r10`).
pub type Reg = u8;

pub const R0: Reg = 0;
pub const R1: Reg = 1;
pub const R2: Reg = 2;
pub const R3: Reg = 3;
pub const R6: Reg = 6;
pub const R7: Reg = 7;
pub const R8: Reg = 8;
/// Read-only frame pointer; the stack grows down from it (512 bytes).
pub const R10: Reg = 10;

// Instruction classes.
const CLASS_LD: u8 = 0x00;
const CLASS_LDX: u8 = 0x01;
const CLASS_ST: u8 = 0x02;
const CLASS_STX: u8 = 0x03;
const CLASS_JMP: u8 = 0x05;
const CLASS_JMP32: u8 = 0x06;
const CLASS_ALU64: u8 = 0x07;

// Memory modes and operand sources.
const MODE_IMM: u8 = 0x00;
const MODE_MEM: u8 = 0x60;
const SRC_K: u8 = 0x00;
const SRC_X: u8 = 0x08;

// ALU operations.
const ALU_ADD: u8 = 0x00;
const ALU_OR: u8 = 0x40;
const ALU_AND: u8 = 0x50;
const ALU_MOV: u8 = 0xb0;

// Jump operations.
const JMP_JA: u8 = 0x00;
const JMP_JEQ: u8 = 0x10;
const JMP_JNE: u8 = 0x50;
const JMP_CALL: u8 = 0x80;
const JMP_EXIT: u8 = 0x90;

/// `src_reg` of a 64-bit immediate load whose `imm` is a map fd the kernel swaps for the map.
const PSEUDO_MAP_FD: u8 = 1;

/// Width of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// 4 bytes.
    W,
    /// 2 bytes.
    H,
    /// 1 byte.
    B,
    /// 8 bytes.
    Dw,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::Dw => 0x18,
        }
    }
}

/// One 8-byte eBPF instruction, as `struct bpf_insn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: Reg,
    pub src: Reg,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The kernel's byte layout on a little-endian host: `dst_reg:4` is the low nibble.
    pub fn encode(&self) -> [u8; 8] {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [
            self.code,
            (self.src << 4) | (self.dst & 0x0f),
            off[0],
            off[1],
            imm[0],
            imm[1],
            imm[2],
            imm[3],
        ]
    }
}

/// Why a program could not be assembled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AsmError {
    #[error("jump to unknown label `{0}`")]
    UnknownLabel(&'static str),
    #[error("label `{0}` defined twice")]
    DuplicateLabel(&'static str),
    #[error("jump to `{0}` does not fit in 16 bits")]
    JumpTooFar(&'static str),
}

/// Builds a program; jumps name labels resolved by [`Asm::finish`].
#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: HashMap<&'static str, usize>,
    fixups: Vec<(usize, &'static str)>,
    duplicate: Option<&'static str>,
}

impl Asm {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> &mut Self {
        self.insns.push(Insn {
            code,
            dst,
            src,
            off,
            imm,
        });
        self
    }

    fn jump(&mut self, code: u8, dst: Reg, imm: i32, label: &'static str) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.push(code, dst, 0, 0, imm)
    }

    /// Marks the position of the next instruction.
    pub fn label(&mut self, name: &'static str) -> &mut Self {
        if self.labels.insert(name, self.insns.len()).is_some() {
            self.duplicate.get_or_insert(name);
        }
        self
    }

    /// `dst = src`
    pub fn mov64_reg(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.push(CLASS_ALU64 | ALU_MOV | SRC_X, dst, src, 0, 0)
    }

    /// `dst = imm` (sign-extended)
    pub fn mov64_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(CLASS_ALU64 | ALU_MOV | SRC_K, dst, 0, 0, imm)
    }

    /// `dst += imm`
    pub fn add64_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(CLASS_ALU64 | ALU_ADD | SRC_K, dst, 0, 0, imm)
    }

    /// `dst &= imm`
    pub fn and64_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(CLASS_ALU64 | ALU_AND | SRC_K, dst, 0, 0, imm)
    }

    /// `dst |= src`
    pub fn or64_reg(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.push(CLASS_ALU64 | ALU_OR | SRC_X, dst, src, 0, 0)
    }

    /// `dst = *(size *)(src + off)`
    pub fn ldx(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.push(CLASS_LDX | MODE_MEM | size.bits(), dst, src, off, 0)
    }

    /// `*(size *)(dst + off) = src`
    pub fn stx(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.push(CLASS_STX | MODE_MEM | size.bits(), dst, src, off, 0)
    }

    /// `*(size *)(dst + off) = imm`; the verifier refuses it on the context, only for the stack.
    pub fn st_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) -> &mut Self {
        self.push(CLASS_ST | MODE_MEM | size.bits(), dst, 0, off, imm)
    }

    /// `dst = map` from a map fd (two instruction slots).
    pub fn ld_map_fd(&mut self, dst: Reg, fd: i32) -> &mut Self {
        self.push(
            CLASS_LD | MODE_IMM | Size::Dw.bits(),
            dst,
            PSEUDO_MAP_FD,
            0,
            fd,
        );
        self.push(0, 0, 0, 0, 0)
    }

    /// `if dst == imm goto label` (64-bit compare, imm sign-extended)
    pub fn jeq_imm(&mut self, dst: Reg, imm: i32, label: &'static str) -> &mut Self {
        self.jump(CLASS_JMP | JMP_JEQ | SRC_K, dst, imm, label)
    }

    /// `if dst != imm goto label` (64-bit compare, imm sign-extended)
    pub fn jne_imm(&mut self, dst: Reg, imm: i32, label: &'static str) -> &mut Self {
        self.jump(CLASS_JMP | JMP_JNE | SRC_K, dst, imm, label)
    }

    /// `if (u32)dst != (u32)imm goto label`
    pub fn jne32_imm(&mut self, dst: Reg, imm: i32, label: &'static str) -> &mut Self {
        self.jump(CLASS_JMP32 | JMP_JNE | SRC_K, dst, imm, label)
    }

    /// `goto label`
    pub fn ja(&mut self, label: &'static str) -> &mut Self {
        self.jump(CLASS_JMP | JMP_JA, 0, 0, label)
    }

    /// Calls kernel helper number `helper`; arguments in r1..r5, result in r0.
    pub fn call(&mut self, helper: i32) -> &mut Self {
        self.push(CLASS_JMP | JMP_CALL, 0, 0, 0, helper)
    }

    /// `return r0`
    pub fn exit(&mut self) -> &mut Self {
        self.push(CLASS_JMP | JMP_EXIT, 0, 0, 0, 0)
    }

    /// Resolves the labels: a jump's offset counts from the instruction after it.
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        if let Some(name) = self.duplicate {
            return Err(AsmError::DuplicateLabel(name));
        }
        for &(at, label) in &self.fixups {
            let target = *self
                .labels
                .get(label)
                .ok_or(AsmError::UnknownLabel(label))?;
            let delta = target as i64 - at as i64 - 1;
            self.insns[at].off = i16::try_from(delta).map_err(|_| AsmError::JumpTooFar(label))?;
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(insns: &[Insn]) -> Vec<[u8; 8]> {
        insns.iter().map(Insn::encode).collect()
    }

    #[test]
    fn encodes_like_the_kernel() {
        let mut a = Asm::new();
        a.mov64_imm(R0, 1)
            .mov64_reg(R6, R1)
            .ldx(Size::W, R2, R6, 4)
            .stx(Size::Dw, R10, -8, R0)
            .st_imm(Size::W, R10, -24, 2)
            .call(80)
            .exit();
        assert_eq!(
            bytes(&a.finish().unwrap()),
            vec![
                [0xb7, 0x00, 0, 0, 1, 0, 0, 0],
                [0xbf, 0x16, 0, 0, 0, 0, 0, 0],
                [0x61, 0x62, 4, 0, 0, 0, 0, 0],
                [0x7b, 0x0a, 0xf8, 0xff, 0, 0, 0, 0],
                [0x62, 0x0a, 0xe8, 0xff, 2, 0, 0, 0],
                [0x85, 0x00, 0, 0, 80, 0, 0, 0],
                [0x95, 0x00, 0, 0, 0, 0, 0, 0],
            ]
        );
    }

    #[test]
    fn map_fd_load_takes_two_slots() {
        let mut a = Asm::new();
        a.ld_map_fd(R1, 7);
        assert_eq!(
            bytes(&a.finish().unwrap()),
            vec![[0x18, 0x11, 0, 0, 7, 0, 0, 0], [0; 8]]
        );
    }

    #[test]
    fn jumps_count_from_the_next_instruction() {
        let mut a = Asm::new();
        a.label("top")
            .jeq_imm(R2, 127, "end")
            .jne32_imm(R2, -65536, "end")
            .ja("top")
            .label("end")
            .exit();
        let insns = a.finish().unwrap();
        assert_eq!(insns[0].code, 0x15);
        assert_eq!(insns[0].off, 2);
        assert_eq!(insns[1].code, 0x56);
        assert_eq!(insns[1].off, 1);
        assert_eq!(insns[2].code, 0x05);
        assert_eq!(insns[2].off, -3);
    }

    #[test]
    fn label_errors() {
        let mut a = Asm::new();
        a.ja("nowhere");
        assert_eq!(a.finish(), Err(AsmError::UnknownLabel("nowhere")));
        let mut a = Asm::new();
        a.label("x").label("x").exit();
        assert_eq!(a.finish(), Err(AsmError::DuplicateLabel("x")));
    }
}
