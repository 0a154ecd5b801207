//! Any classic-BPF program on any seccomp_data: a verdict or an error,
//! never a panic or an endless loop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syscensus::seccomp::{self, SeccompData};
use syscensus_fuzz::Bytes;

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes(data);
    let input = SeccompData {
        nr: bytes.u32(),
        arch: bytes.u32(),
        instruction_pointer: bytes.u64(),
        args: [0; 6].map(|_: u64| bytes.u64()),
    };
    let mut program = Vec::new();
    while !bytes.is_empty() {
        program.push(libc::sock_filter {
            code: u16::from(bytes.u8()) | u16::from(bytes.u8()) << 8,
            jt: bytes.u8(),
            jf: bytes.u8(),
            k: bytes.u32(),
        });
    }
    let _ = seccomp::evaluate(&program, &input);
});
