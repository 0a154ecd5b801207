//! `cargo xtask gen-crds`: writes the CRD manifests into deploy/ from the
//! Rust types in api/.
use anyhow::{Context as _, bail};

use crate::run::root;

/// Where the CRDs go.
const DIR: &str = "deploy/base/crds";

/// Writes (or with `check`, compares) the CRD manifests.
pub(crate) fn generate(check: bool) -> anyhow::Result<()> {
    let dir = root().join(DIR);
    std::fs::create_dir_all(&dir)?;
    for (name, yaml) in syscensus_api::crd_yaml() {
        let path = dir.join(format!("{name}.yaml"));
        if check {
            let current = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            if current != yaml {
                bail!("{} is stale: run `cargo xtask gen-crds`", path.display());
            }
        } else {
            std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
