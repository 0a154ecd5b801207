//! The filter's code: what each syscall number leads to (its plan and
//! verdict), the verdicts over a range of syscall numbers as
//! segments, a balanced binary search over them, and each verdict's rules as
//! argument comparisons in 32-bit halves.
use std::collections::BTreeMap;

use super::bpf::{Asm, Label, Test};
use crate::{
    profile::{Arg, Op},
    syscalls::Arch,
};

/// `offsetof(struct seccomp_data, args)`.
const OFFSET_ARGS: u32 = 16;

/// What a syscall number leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Return(u32),
    /// Conditional rules, tried in order, then `otherwise`.
    Rules {
        rules: Vec<(Vec<Arg>, u32)>,
        otherwise: u32,
    },
}

/// The rules of one syscall number on one architecture.
#[derive(Debug, Default)]
pub(super) struct Plan {
    unconditional: Option<u32>,
    conditional: Vec<(Vec<Arg>, u32)>,
}

impl Plan {
    pub(super) fn add(&mut self, conditions: Vec<Arg>, value: u32) {
        if conditions.is_empty() {
            self.unconditional.get_or_insert(value);
        } else {
            self.conditional.push((conditions, value));
        }
    }

    pub(super) fn verdict(self, default: u32) -> Verdict {
        match self.unconditional {
            Some(value) => Verdict::Return(value),
            None => Verdict::Rules {
                rules: self.conditional,
                otherwise: default,
            },
        }
    }
}

/// Whether `arch` passes syscall arguments as 32-bit values to seccomp
/// (libseccomp compares only their low halves there).
pub(super) fn is_32bit(arch: Arch) -> bool {
    matches!(arch, Arch::X86 | Arch::X32 | Arch::Arm)
}

/// A run of syscall numbers with one verdict.
#[derive(Debug)]
pub(super) struct Segment {
    pub(super) start: u32,
    pub(super) verdict: Verdict,
}

/// The verdicts over `[low, high]`: each planned number, the -ENOSYS range
/// above `enosys_above`, and the default elsewhere; equal neighbours merged.
pub(super) fn segments(
    mut plans: BTreeMap<u32, Plan>,
    low: u32,
    high: u32,
    default: u32,
    enosys_above: Option<u32>,
) -> Vec<Segment> {
    let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    let top = enosys_above.map_or(high, |max| max.min(high));
    if top < low {
        return vec![Segment {
            start: low,
            verdict: Verdict::Return(enosys),
        }];
    }
    let mut raw: Vec<Segment> = Vec::new();
    let mut cursor = Some(low);
    let numbers: Vec<u32> = plans.range(low..=top).map(|(nr, _)| *nr).collect();
    for nr in numbers {
        if let Some(at) = cursor.filter(|at| *at < nr) {
            raw.push(Segment {
                start: at,
                verdict: Verdict::Return(default),
            });
        }
        let plan = plans.remove(&nr).unwrap_or_default();
        raw.push(Segment {
            start: nr,
            verdict: plan.verdict(default),
        });
        cursor = nr.checked_add(1);
    }
    if let Some(at) = cursor.filter(|at| *at <= top) {
        raw.push(Segment {
            start: at,
            verdict: Verdict::Return(default),
        });
    }
    if top < high {
        raw.push(Segment {
            start: top + 1,
            verdict: Verdict::Return(enosys),
        });
    }
    let mut merged: Vec<Segment> = Vec::with_capacity(raw.len());
    for segment in raw {
        match (merged.last(), &segment.verdict) {
            (Some(last), Verdict::Return(v)) if last.verdict == Verdict::Return(*v) => {}
            _ => merged.push(segment),
        }
    }
    merged
}

/// A balanced binary search over the segments' start numbers (the
/// accumulator holds the syscall number), each leaf returning its verdict.
pub(super) fn emit_tree(asm: &mut Asm, segments: &[Segment], arch: Arch) {
    match segments {
        [] => {}
        [only] => emit_verdict(asm, &only.verdict, arch),
        _ => {
            let mid = segments.len() / 2;
            let left = asm.label();
            let right = asm.label();
            asm.jump(Test::Ge, segments[mid].start, right, left);
            asm.bind(left);
            emit_tree(asm, &segments[..mid], arch);
            asm.bind(right);
            emit_tree(asm, &segments[mid..], arch);
        }
    }
}

pub(super) fn emit_verdict(asm: &mut Asm, verdict: &Verdict, arch: Arch) {
    match verdict {
        Verdict::Return(value) => asm.ret(*value),
        Verdict::Rules { rules, otherwise } => {
            for (conditions, value) in rules {
                let next = asm.label();
                for condition in conditions {
                    emit_condition(asm, condition, arch, next);
                }
                asm.ret(*value);
                asm.bind(next);
            }
            asm.ret(*otherwise);
        }
    }
}

/// Falls through if `arg` holds, jumps to `fail` otherwise.
pub(super) fn emit_condition(asm: &mut Asm, arg: &Arg, arch: Arch, fail: Label) {
    let low = OFFSET_ARGS + 8 * arg.index;
    let high = low + 4;
    let pass = asm.label();
    if is_32bit(arch) {
        let (value, mask) = (arg.value as u32, arg.value as u32);
        asm.load(low);
        match arg.op {
            Op::Eq => asm.jump(Test::Eq, value, pass, fail),
            Op::Ne => asm.jump(Test::Eq, value, fail, pass),
            Op::Gt => asm.jump(Test::Gt, value, pass, fail),
            Op::Ge => asm.jump(Test::Ge, value, pass, fail),
            Op::Lt => asm.jump(Test::Ge, value, fail, pass),
            Op::Le => asm.jump(Test::Gt, value, fail, pass),
            Op::MaskedEq => {
                asm.and(mask);
                asm.jump(Test::Eq, arg.value_two as u32 & mask, pass, fail);
            }
        }
        asm.bind(pass);
        return;
    }
    let (value_high, value_low) = ((arg.value >> 32) as u32, arg.value as u32);
    match arg.op {
        Op::Eq | Op::Ne => {
            let (equal, unequal) = if arg.op == Op::Eq {
                (pass, fail)
            } else {
                (fail, pass)
            };
            let check_low = asm.label();
            asm.load(high);
            asm.jump(Test::Eq, value_high, check_low, unequal);
            asm.bind(check_low);
            asm.load(low);
            asm.jump(Test::Eq, value_low, equal, unequal);
        }
        Op::Gt | Op::Ge | Op::Lt | Op::Le => {
            // Greater: high word above, or equal and low word above (or
            // at least equal for GE). LT and LE are the negations of GE
            // and GT.
            let (above, not_above) = match arg.op {
                Op::Gt | Op::Ge => (pass, fail),
                _ => (fail, pass),
            };
            let low_test = match arg.op {
                Op::Gt | Op::Le => Test::Gt,
                _ => Test::Ge,
            };
            let same_high = asm.label();
            let check_low = asm.label();
            asm.load(high);
            asm.jump(Test::Gt, value_high, above, same_high);
            asm.bind(same_high);
            asm.jump(Test::Eq, value_high, check_low, not_above);
            asm.bind(check_low);
            asm.load(low);
            asm.jump(low_test, value_low, above, not_above);
        }
        Op::MaskedEq => {
            let (mask_high, mask_low) = ((arg.value >> 32) as u32, arg.value as u32);
            let (datum_high, datum_low) = ((arg.value_two >> 32) as u32, arg.value_two as u32);
            if mask_high != 0 {
                let next = asm.label();
                asm.load(high);
                asm.and(mask_high);
                asm.jump(Test::Eq, datum_high & mask_high, next, fail);
                asm.bind(next);
            }
            if mask_low != 0 {
                asm.load(low);
                asm.and(mask_low);
                asm.jump(Test::Eq, datum_low & mask_low, pass, fail);
            }
        }
    }
    asm.bind(pass);
}
