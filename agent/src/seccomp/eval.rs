//! A classic-BPF interpreter for seccomp filters: runs a program on one
//! `seccomp_data` the way the kernel does, for tests and for checking a
//! filter's verdict on a syscall before installing it.
use libc::sock_filter;

use super::bpf::{
    BPF_ABS, BPF_ALU, BPF_AND, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_JSET, BPF_K, BPF_LD,
    BPF_RET, BPF_W,
};

/// `struct seccomp_data` (linux/seccomp.h): what a filter sees of a syscall.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompData {
    pub nr: u32,
    /// `AUDIT_ARCH_*`.
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    /// The 64 bytes the kernel lays out, in native byte order.
    fn bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        out[4..8].copy_from_slice(&self.arch.to_ne_bytes());
        out[8..16].copy_from_slice(&self.instruction_pointer.to_ne_bytes());
        for (i, arg) in self.args.iter().enumerate() {
            out[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
        }
        out
    }
}

/// A program the kernel would reject, or one that runs off its end.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("instruction {at}: unsupported opcode {code:#06x}")]
    Opcode { at: usize, code: u16 },
    #[error("instruction {at}: load from offset {offset}, outside seccomp_data or unaligned")]
    Load { at: usize, offset: u32 },
    #[error("instruction {at}: jump past the end of the program")]
    Jump { at: usize },
    #[error("the program ends without a return")]
    NoReturn,
}

/// Runs `filter` on `data` and returns the filter's return value
/// (`SECCOMP_RET_*` action and data).
pub fn evaluate(filter: &[sock_filter], data: &SeccompData) -> Result<u32, EvalError> {
    let bytes = data.bytes();
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let Some(insn) = filter.get(pc) else {
            return Err(EvalError::NoReturn);
        };
        let at = pc;
        pc += 1;
        match insn.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => {
                let offset = insn.k as usize;
                if !offset.is_multiple_of(4) || offset + 4 > bytes.len() {
                    return Err(EvalError::Load { at, offset: insn.k });
                }
                let mut word = [0u8; 4];
                word.copy_from_slice(&bytes[offset..offset + 4]);
                acc = u32::from_ne_bytes(word);
            }
            c if c == BPF_ALU | BPF_AND | BPF_K => acc &= insn.k,
            c if c == BPF_RET | BPF_K => return Ok(insn.k),
            c if c == BPF_JMP | BPF_JA => pc += insn.k as usize,
            c if c & 0x07 == BPF_JMP && c & 0x08 == BPF_K => {
                let taken = match c & 0xf0 {
                    BPF_JEQ => acc == insn.k,
                    BPF_JGT => acc > insn.k,
                    BPF_JGE => acc >= insn.k,
                    BPF_JSET => acc & insn.k != 0,
                    _ => return Err(EvalError::Opcode { at, code: c }),
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            code => return Err(EvalError::Opcode { at, code }),
        }
        if pc > filter.len() {
            return Err(EvalError::Jump { at });
        }
    }
}
