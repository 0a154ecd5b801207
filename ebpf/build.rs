//! Rebuild the kernel program when the `bpf-linker` binary changes: cargo
//! cannot express a dependency on a tool, so its mtime stands in for it.
use which::which;

fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(_) => println!("cargo:warning=bpf-linker not found: run scripts/setup"),
    }
}
