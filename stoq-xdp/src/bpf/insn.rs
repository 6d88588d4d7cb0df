//! eBPF instructions by name, and an assembler whose labels compute jump
//! offsets, so that no offset is ever counted by hand.
//!
//! Encodings follow include/uapi/linux/bpf_common.h and
//! include/uapi/linux/bpf.h; Documentation/bpf/standardization/
//! instruction-set.rst describes them.

use std::fmt;

// Instruction classes (bpf_common.h, bpf.h).
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_ALU64: u8 = 0x07;
// Load modes (bpf_common.h).
const BPF_IMM: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
// Operand source (bpf_common.h): immediate or register.
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
// ALU: move and byte swap (bpf.h); `BPF_TO_BE` shares BPF_X's bit.
const BPF_MOV: u8 = 0xb0;
const BPF_END: u8 = 0xd0;
const BPF_TO_BE: u8 = 0x08;
// Jumps: always, call, exit (bpf_common.h, bpf.h).
const BPF_JA: u8 = 0x00;
const BPF_CALL: u8 = 0x80;
const BPF_EXIT: u8 = 0x90;
/// `src_reg` of a 64-bit immediate load whose `imm` is a map's descriptor
/// (`BPF_PSEUDO_MAP_FD`, bpf.h); the kernel puts the map's address there.
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// A register: `R0` return value, `R1`–`R5` arguments (clobbered by calls),
/// `R6`–`R9` kept across calls, `R10` the read-only frame pointer.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reg {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
}

/// A 64-bit arithmetic operation (the `BPF_OP` bits, bpf_common.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Alu {
    /// `dst += src`
    Add = 0x00,
    /// `dst -= src`
    Sub = 0x10,
    /// `dst *= src`
    Mul = 0x20,
    /// `dst /= src` (unsigned; division by zero gives 0)
    Div = 0x30,
    /// `dst |= src`
    Or = 0x40,
    /// `dst &= src`
    And = 0x50,
    /// `dst <<= src`
    Lsh = 0x60,
    /// `dst >>= src` (logical)
    Rsh = 0x70,
    /// `dst %= src` (unsigned)
    Mod = 0x90,
    /// `dst ^= src`
    Xor = 0xa0,
    /// `dst >>= src` (arithmetic)
    Arsh = 0xc0,
}

/// A jump condition, comparing 64 bits (the `BPF_OP` bits of `BPF_JMP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Cond {
    /// `==`
    Eq = 0x10,
    /// `>` unsigned
    Gt = 0x20,
    /// `>=` unsigned
    Ge = 0x30,
    /// `dst & src != 0`
    Set = 0x40,
    /// `!=`
    Ne = 0x50,
    /// `>` signed
    Sgt = 0x60,
    /// `>=` signed
    Sge = 0x70,
    /// `<` unsigned
    Lt = 0xa0,
    /// `<=` unsigned
    Le = 0xb0,
    /// `<` signed
    Slt = 0xc0,
    /// `<=` signed
    Sle = 0xd0,
}

/// A memory access width (the `BPF_SIZE` bits, bpf_common.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Size {
    /// 8 bits
    B = 0x10,
    /// 16 bits
    H = 0x08,
    /// 32 bits
    W = 0x00,
    /// 64 bits
    Dw = 0x18,
}

/// One instruction, `struct bpf_insn` (include/uapi/linux/bpf.h): opcode,
/// destination and source register (4 bits each), offset, immediate.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Self {
        Self::raw(code, dst as u8, src as u8, off, imm)
    }

    fn raw(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        // The C bitfields `dst_reg:4, src_reg:4` fill a byte from its low
        // bits on little-endian targets and from its high bits on big-endian.
        let regs = if cfg!(target_endian = "little") { src << 4 | dst } else { dst << 4 | src };
        Insn { code, regs, off, imm }
    }

    /// `dst = imm` (sign-extended to 64 bits).
    pub fn mov64_imm(dst: Reg, imm: i32) -> Self {
        Self::new(BPF_ALU64 | BPF_MOV | BPF_K, dst, Reg::R0, 0, imm)
    }

    /// `dst = src`.
    pub fn mov64_reg(dst: Reg, src: Reg) -> Self {
        Self::new(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0)
    }

    /// `dst op= imm` on 64 bits.
    pub fn alu64_imm(op: Alu, dst: Reg, imm: i32) -> Self {
        Self::new(BPF_ALU64 | op as u8 | BPF_K, dst, Reg::R0, 0, imm)
    }

    /// `dst op= src` on 64 bits.
    pub fn alu64_reg(op: Alu, dst: Reg, src: Reg) -> Self {
        Self::new(BPF_ALU64 | op as u8 | BPF_X, dst, src, 0, 0)
    }

    /// `dst = htobe16(dst)`: the low 16 bits of `dst`, loaded from packet
    /// memory, as the number they encode in network byte order (the upper
    /// bits are cleared).
    pub fn be16(dst: Reg) -> Self {
        Self::new(BPF_ALU | BPF_END | BPF_TO_BE, dst, Reg::R0, 0, 16)
    }

    /// `dst = htobe32(dst)`, see [`be16`](Self::be16).
    pub fn be32(dst: Reg) -> Self {
        Self::new(BPF_ALU | BPF_END | BPF_TO_BE, dst, Reg::R0, 0, 32)
    }

    /// `dst = *(size *)(src + off)`, zero-extended.
    pub fn ldx(size: Size, dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(BPF_LDX | BPF_MEM | size as u8, dst, src, off, 0)
    }

    /// `if dst cond imm goto +off` (`imm` sign-extended to 64 bits). Use
    /// [`Asm::jmp_imm`] to jump to a label instead.
    pub fn jmp_imm(cond: Cond, dst: Reg, imm: i32, off: i16) -> Self {
        Self::new(BPF_JMP | cond as u8 | BPF_K, dst, Reg::R0, off, imm)
    }

    /// `if dst cond src goto +off`.
    pub fn jmp_reg(cond: Cond, dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(BPF_JMP | cond as u8 | BPF_X, dst, src, off, 0)
    }

    /// `goto +off`.
    pub fn ja(off: i16) -> Self {
        Self::new(BPF_JMP | BPF_JA, Reg::R0, Reg::R0, off, 0)
    }

    /// `dst = map`: the two-slot 64-bit immediate load (`BPF_LD | BPF_DW |
    /// BPF_IMM`) of a map's descriptor, which the verifier replaces with the
    /// map's address.
    pub fn ld_map_fd(dst: Reg, map_fd: i32) -> [Self; 2] {
        [
            Self::raw(BPF_LD | Size::Dw as u8 | BPF_IMM, dst as u8, BPF_PSEUDO_MAP_FD, 0, map_fd),
            Self::raw(0, 0, 0, 0, 0),
        ]
    }

    /// Calls kernel helper number `helper` (`enum bpf_func_id`, bpf.h) with
    /// arguments in `R1`–`R5`; the result is in `R0`.
    pub fn call(helper: i32) -> Self {
        Self::new(BPF_JMP | BPF_CALL, Reg::R0, Reg::R0, 0, helper)
    }

    /// Returns `R0`.
    pub fn exit() -> Self {
        Self::new(BPF_JMP | BPF_EXIT, Reg::R0, Reg::R0, 0, 0)
    }

    /// The 8 bytes the kernel reads (offset and immediate in host order).
    pub fn to_bytes(self) -> [u8; 8] {
        let [o0, o1] = self.off.to_ne_bytes();
        let [i0, i1, i2, i3] = self.imm.to_ne_bytes();
        [self.code, self.regs, o0, o1, i0, i1, i2, i3]
    }
}

impl fmt::Debug for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x} {:02x} off {} imm {}", self.code, self.regs, self.off, self.imm)
    }
}

/// A jump target in an [`Asm`]; bind it with [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// Why [`Asm::finish`] failed: a mistake in the program's construction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AsmError {
    /// A jump names a label that was never bound (or another assembler's).
    #[error("a jump at instruction {at} targets label {label}, which was never bound")]
    Unbound {
        /// The jump's index.
        at: usize,
        /// The label's number.
        label: usize,
    },
    /// A label was bound twice.
    #[error("label {0} was bound twice")]
    Rebound(usize),
    /// A jump's distance does not fit the 16-bit offset.
    #[error("the jump at instruction {at} is {distance} instructions long, more than 16 bits hold")]
    TooFar {
        /// The jump's index.
        at: usize,
        /// Its distance.
        distance: i64,
    },
}

/// Collects instructions; jumps name [`Label`]s, whose offsets
/// [`finish`](Self::finish) fills in (`target - (jump + 1)`, in 8-byte
/// slots, so the two-slot map load counts twice).
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    /// (jump index, target label)
    fixups: Vec<(usize, Label)>,
    error: Option<AsmError>,
}

impl Asm {
    /// An empty program.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new label, bound later.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Makes `label` point at the next instruction pushed.
    pub fn bind(&mut self, label: Label) {
        match self.labels.get_mut(label.0) {
            Some(slot @ None) => *slot = Some(self.insns.len()),
            Some(Some(_)) => self.error = self.error.take().or(Some(AsmError::Rebound(label.0))),
            None => {} // Another assembler's label: its jumps fail in finish.
        }
    }

    /// Appends instructions.
    pub fn push(&mut self, insns: impl IntoIterator<Item = Insn>) {
        self.insns.extend(insns);
    }

    /// `if dst cond imm goto to`.
    pub fn jmp_imm(&mut self, cond: Cond, dst: Reg, imm: i32, to: Label) {
        self.jump(Insn::jmp_imm(cond, dst, imm, 0), to);
    }

    /// `if dst cond src goto to`.
    pub fn jmp_reg(&mut self, cond: Cond, dst: Reg, src: Reg, to: Label) {
        self.jump(Insn::jmp_reg(cond, dst, src, 0), to);
    }

    /// `goto to`.
    pub fn ja(&mut self, to: Label) {
        self.jump(Insn::ja(0), to);
    }

    fn jump(&mut self, insn: Insn, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.insns.push(insn);
    }

    /// The instructions, every jump pointing at its label.
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        for &(at, label) in &self.fixups {
            let target = self.labels.get(label.0).copied().flatten();
            let target = target.ok_or(AsmError::Unbound { at, label: label.0 })?;
            let distance = target as i64 - (at as i64 + 1);
            self.insns[at].off = i16::try_from(distance).map_err(|_| AsmError::TooFar { at, distance })?;
        }
        Ok(self.insns)
    }
}
