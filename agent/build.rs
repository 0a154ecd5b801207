//! Builds the kernel program (`ebpf/`) for the BPF target with aya-build; the
//! object lands in `OUT_DIR` and `src/bpf.rs` embeds it.
// The build-dependency on the kernel program's crate is there so that cargo
// rebuilds the agent (and the embedded object) when the program changes.
use syscensus_ebpf as _;

use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "syscensus-ebpf")
        .ok_or_else(|| anyhow!("package syscensus-ebpf not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
}
