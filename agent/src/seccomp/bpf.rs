//! A small classic-BPF assembler: instructions with symbolic forward jump
//! targets, resolved to the kernel's encoding. Conditional jumps only reach
//! 255 instructions ahead (8-bit offsets); farther targets go through an
//! unconditional `ja` trampoline (32-bit offset) placed right after the jump.
use libc::sock_filter;

// linux/bpf_common.h and linux/filter.h.
pub(super) const BPF_LD: u16 = 0x00;
pub(super) const BPF_ALU: u16 = 0x04;
pub(super) const BPF_JMP: u16 = 0x05;
pub(super) const BPF_RET: u16 = 0x06;
pub(super) const BPF_W: u16 = 0x00;
pub(super) const BPF_ABS: u16 = 0x20;
pub(super) const BPF_K: u16 = 0x00;
pub(super) const BPF_AND: u16 = 0x50;
pub(super) const BPF_JA: u16 = 0x00;
pub(super) const BPF_JEQ: u16 = 0x10;
pub(super) const BPF_JGT: u16 = 0x20;
pub(super) const BPF_JGE: u16 = 0x30;
pub(super) const BPF_JSET: u16 = 0x40;

/// A position in the program, bound to the instruction emitted after
/// [`Asm::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Label(usize);

/// A conditional jump's test of the accumulator against a constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Test {
    Eq,
    Gt,
    Ge,
}

impl Test {
    fn code(self) -> u16 {
        BPF_JMP
            | BPF_K
            | match self {
                Test::Eq => BPF_JEQ,
                Test::Gt => BPF_JGT,
                Test::Ge => BPF_JGE,
            }
    }
}

#[derive(Clone, Copy, Debug)]
enum Insn {
    /// `A = *(u32 *)(data + offset)`.
    Load(u32),
    /// `A &= k`.
    And(u32),
    Jump {
        test: Test,
        k: u32,
        yes: Label,
        no: Label,
    },
    Return(u32),
}

/// A program under construction.
#[derive(Debug, Default)]
pub(super) struct Asm {
    insns: Vec<Insn>,
    /// Label → index of the instruction it is bound to.
    labels: Vec<Option<usize>>,
}

/// A jump target beyond reach, or a label never bound: a bug in the
/// generator, reported rather than emitted.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AsmError {
    UnboundLabel,
    BackwardJump,
}

impl Asm {
    pub(super) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `label` to the next instruction emitted.
    pub(super) fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    pub(super) fn load(&mut self, offset: u32) {
        self.insns.push(Insn::Load(offset));
    }

    pub(super) fn and(&mut self, k: u32) {
        self.insns.push(Insn::And(k));
    }

    pub(super) fn jump(&mut self, test: Test, k: u32, yes: Label, no: Label) {
        self.insns.push(Insn::Jump { test, k, yes, no });
    }

    pub(super) fn ret(&mut self, value: u32) {
        self.insns.push(Insn::Return(value));
    }

    /// Resolves the labels and encodes the program.
    pub(super) fn finish(self) -> Result<Vec<sock_filter>, AsmError> {
        let target = |label: Label| self.labels[label.0].ok_or(AsmError::UnboundLabel);
        // Trampolines needed after each instruction: (for `yes`, for `no`).
        // They only ever get added, and each one only lengthens distances, so
        // iterating until nothing changes terminates.
        let mut tramps = vec![(false, false); self.insns.len()];
        let mut position = vec![0usize; self.insns.len() + 1];
        loop {
            let mut at = 0;
            for (i, (t, f)) in tramps.iter().enumerate() {
                position[i] = at;
                at += 1 + usize::from(*t) + usize::from(*f);
            }
            position[self.insns.len()] = at;
            let mut changed = false;
            for (i, insn) in self.insns.iter().enumerate() {
                if let Insn::Jump { yes, no, .. } = insn {
                    let from = position[i] + 1;
                    let (t, f) = tramps[i];
                    let far = |label: Label| -> Result<bool, AsmError> {
                        let to = position[target(label)?];
                        if to < from {
                            return Err(AsmError::BackwardJump);
                        }
                        // Trampolines sit between the jump and its targets,
                        // so count them in when testing the direct reach.
                        Ok(to - from > usize::from(u8::MAX))
                    };
                    let need_t = t || far(*yes)?;
                    let need_f = f || far(*no)?;
                    if (need_t, need_f) != (t, f) {
                        tramps[i] = (need_t, need_f);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }

        let mut out = Vec::with_capacity(position[self.insns.len()]);
        for (i, insn) in self.insns.iter().enumerate() {
            let next = position[i] + 1;
            match *insn {
                Insn::Load(offset) => out.push(stmt(BPF_LD | BPF_W | BPF_ABS, offset)),
                Insn::And(k) => out.push(stmt(BPF_ALU | BPF_AND | BPF_K, k)),
                Insn::Return(k) => out.push(stmt(BPF_RET | BPF_K, k)),
                Insn::Jump { test, k, yes, no } => {
                    let (t, f) = tramps[i];
                    let yes_to = position[target(yes)?];
                    let no_to = position[target(no)?];
                    // Trampolines follow the jump: `yes` first, then `no`.
                    let jt = if t { 0 } else { yes_to - next };
                    let jf = if f { usize::from(t) } else { no_to - next };
                    out.push(sock_filter {
                        code: test.code(),
                        jt: jt as u8,
                        jf: jf as u8,
                        k,
                    });
                    let mut at = next;
                    for (needed, to) in [(t, yes_to), (f, no_to)] {
                        if needed {
                            out.push(stmt(BPF_JMP | BPF_JA, (to - (at + 1)) as u32));
                            at += 1;
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn near_jumps_are_direct() {
        let mut asm = Asm::default();
        let yes = asm.label();
        let no = asm.label();
        asm.load(0);
        asm.jump(Test::Eq, 7, yes, no);
        asm.bind(yes);
        asm.ret(1);
        asm.bind(no);
        asm.ret(2);
        let prog = asm.finish().unwrap();
        assert_eq!(prog.len(), 4);
        assert_eq!((prog[1].jt, prog[1].jf), (0, 1));
    }

    #[test]
    fn far_jumps_go_through_trampolines() {
        let mut asm = Asm::default();
        let far = asm.label();
        let near = asm.label();
        asm.load(0);
        asm.jump(Test::Eq, 7, far, near);
        asm.bind(near);
        for _ in 0..300 {
            asm.ret(2);
        }
        asm.bind(far);
        asm.ret(1);
        let prog = asm.finish().unwrap();
        // One trampoline, for the far target.
        assert_eq!(prog.len(), 304);
        assert_eq!((prog[1].jt, prog[1].jf), (0, 1));
        assert_eq!(prog[2].code, BPF_JMP | BPF_JA);
        assert_eq!(3 + prog[2].k as usize, 303);
        assert_eq!(prog[303].k, 1);
    }

    #[test]
    fn unbound_labels_are_errors() {
        let mut asm = Asm::default();
        let nowhere = asm.label();
        let here = asm.label();
        asm.jump(Test::Eq, 0, nowhere, here);
        asm.bind(here);
        asm.ret(0);
        assert_eq!(asm.finish().unwrap_err(), AsmError::UnboundLabel);
    }
}
