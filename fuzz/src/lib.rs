//! What the fuzz targets share: the host profiles are resolved for, the
//! checks on paths built from names, and a reader of structured values
//! from the fuzzer's bytes.
use std::path::{Component, Path};

use syscensus::{
    profile::{Host, KernelVersion},
    syscalls::Arch,
};

/// An x86_64 host with every capability on kernel 6.1, so that Docker
/// conditions resolve the same way on every machine.
pub const HOST: Host = Host {
    arch: Arch::X86_64,
    capabilities: u64::MAX,
    kernel: KernelVersion { major: 6, minor: 1 },
};

/// Panics unless `path` is relative, made of plain names that fit a file
/// name, without NUL or backslash: a path that stays in its directory.
pub fn assert_contained(path: &Path) {
    assert!(path.is_relative(), "{path:?} is absolute");
    for component in path.components() {
        let Component::Normal(name) = component else {
            panic!("{path:?} has the component {component:?}");
        };
        let name = name.to_str().expect("UTF-8 path");
        assert!(
            !name.is_empty() && name.len() <= 255 && !name.contains(['\0', '\\']),
            "{path:?} has the component {name:?}"
        );
    }
}

/// Values read from the front of the fuzzer's bytes; zeros once they run
/// out.
#[derive(Debug)]
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((first, rest)) => {
                self.0 = rest;
                *first
            }
            None => 0,
        }
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    /// One of `items`.
    pub fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[usize::from(self.u8()) % items.len()]
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
