//! Placeholder until `cargo xtask gen-syscalls` writes the real tables.
pub struct Table {
    pub by_number: &'static [(u32, &'static str)],
    pub by_name: &'static [(&'static str, u32)],
}
pub static X86_64: Table = Table { by_number: &[(0, "read"), (1, "write")], by_name: &[("read", 0), ("write", 1)] };
pub static X86: Table = Table { by_number: &[(3, "read"), (4, "write")], by_name: &[("read", 3), ("write", 4)] };
pub static X32: Table = Table { by_number: &[(0, "read"), (1, "write")], by_name: &[("read", 0), ("write", 1)] };
pub static AARCH64: Table = Table { by_number: &[(63, "read"), (64, "write")], by_name: &[("read", 63), ("write", 64)] };
pub static ALL_NAMES: &[&str] = &["read", "write"];
pub const SOURCE: &str = "placeholder";
