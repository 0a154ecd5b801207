//! `cargo xtask image`: the agent's OCI image, built from
//! deploy/image/Containerfile with buildah and written as an OCI archive.
//!
//! No registry is reachable here, so the Containerfile's build stage (a Rust
//! image) cannot be pulled. Its two steps run on this machine instead (the
//! release build, then deploy/image/rootfs) and buildah takes the result as
//! that stage (`--build-context build=DIR` stands in for a stage of that
//! name): the final stage, labels and entrypoint come from the same file a
//! user's CI builds. buildah rather than an OCI layout written here, so that
//! the Containerfile itself is what is tested, not a second description of
//! the image. Its storage is a temporary directory (vfs driver: no mounts)
//! removed afterwards; layer and config times are the commit's
//! (`SOURCE_DATE_EPOCH`), so the same binary gives the same digest.
use std::{
    collections::HashMap,
    fs,
    io::Read as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail, ensure};

use crate::run::{cargo, root, run};

/// The image's name, as deploy/base's kustomization names it.
pub(crate) const REPOSITORY: &str = "ghcr.io/syscensus/syscensus";

/// The size the image should stay under, unpacked.
const TARGET_BYTES: u64 = 30_000_000;

/// What was built.
#[derive(Debug)]
pub(crate) struct Image {
    /// The OCI archive.
    pub archive: PathBuf,
}

/// Builds the image for this machine's architecture into
/// target/image/syscensus.oci.tar and prints its name, size and digest.
pub(crate) fn image() -> anyhow::Result<Image> {
    let buildah = which("buildah").context(
        "buildah not found: install the Debian package buildah (scripts/setup does: cargo xtask setup)",
    )?;
    let root = root();
    let out = root.join("target/image");
    fs::create_dir_all(&out)?;
    run(cargo().args(["build", "--release", "--locked", "-p", "syscensus"]))?;
    // The build stage's file system: /rootfs, as the Containerfile's stage
    // leaves it.
    let stage = out.join("build");
    let rootfs = stage.join("rootfs");
    run(Command::new(root.join("deploy/image/rootfs"))
        .arg(root.join("target/release/syscensus"))
        .arg(&rootfs))?;
    // The final stage copies from the build stage only: an empty context.
    let context = out.join("context");
    fs::create_dir_all(&context)?;

    let version = env!("CARGO_PKG_VERSION");
    let name = format!("{REPOSITORY}:{version}");
    let revision = git(&["rev-parse", "HEAD"]).unwrap_or_else(|_| "unknown".into());
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => epoch,
        Err(_) => git(&["log", "-1", "--format=%ct"]).unwrap_or_else(|_| "0".into()),
    };
    let storage = tempdir_in(&out, "storage")?;
    let buildah_in = |args: &[&str]| {
        let mut cmd = Command::new(&buildah);
        cmd.arg("--root")
            .arg(storage.join("root"))
            .arg("--runroot")
            .arg(storage.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        cmd
    };
    let archive = out.join("syscensus.oci.tar");
    let _ = fs::remove_file(&archive);
    let result = (|| {
        run(buildah_in(&[
            "build",
            "--quiet",
            "--timestamp",
            &epoch,
            "--build-arg",
            &format!("VERSION={version}"),
            "--build-arg",
            &format!("REVISION={revision}"),
            "--tag",
            &name,
        ])
        .arg("--build-context")
        .arg(format!("build={}", stage.display()))
        .arg("--file")
        .arg(root.join("deploy/image/Containerfile"))
        .arg(&context))?;
        run(buildah_in(&["push", "--quiet", &name])
            .arg(format!("oci-archive:{}:{name}", archive.display())))
    })();
    // Storage is only a means: nothing is mounted (vfs), so removing the
    // directory removes it all.
    let _ = fs::remove_dir_all(&storage);
    result?;

    let digest = manifest_digest(&archive, version, &revision)?;
    ensure!(
        !rootfs.join("bin/sh").exists() && !rootfs.join("usr/bin/sh").exists(),
        "the image has a shell"
    );
    let unpacked = dir_size(&rootfs)?;
    let packed = fs::metadata(&archive)?.len();
    eprintln!(
        "image {name} ({arch}): {digest}\n  {unpacked_mb:.1} MB unpacked, {packed_mb:.1} MB as an archive ({})",
        archive.display(),
        arch = oci_arch(),
        unpacked_mb = mb(unpacked),
        packed_mb = mb(packed),
    );
    ensure!(
        unpacked < TARGET_BYTES,
        "the image is {:.1} MB unpacked, over its {:.0} MB target",
        mb(unpacked),
        mb(TARGET_BYTES)
    );
    Ok(Image { archive })
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The GOARCH-style name of this machine's architecture, as OCI names it.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

fn git(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("git")
        .current_dir(root())
        .args(args)
        .output()
        .context("failed to run git")?;
    if !output.status.success() {
        bail!("git {args:?} failed");
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// A fresh directory `<dir>/<prefix>.<pid>`, emptied if a killed run left
/// it.
fn tempdir_in(dir: &Path, prefix: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{prefix}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&path);
    fs::create_dir_all(&path)?;
    Ok(path)
}

/// The JSON files of an OCI archive (index.json and the JSON blobs), by
/// path.
fn json_files(archive: &Path) -> anyhow::Result<HashMap<String, serde_json::Value>> {
    let file =
        fs::File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut files = HashMap::new();
    for entry in tar::Archive::new(file).entries()? {
        let mut entry = entry?;
        let path = entry.path()?.display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        if let Ok(value) = serde_json::from_slice(&bytes) {
            files.insert(path, value);
        }
    }
    Ok(files)
}

/// The digest of the one manifest in the archive, after checking that its
/// config says what the Containerfile says: the entrypoint and the
/// `org.opencontainers.image.*` labels.
fn manifest_digest(archive: &Path, version: &str, revision: &str) -> anyhow::Result<String> {
    let files = json_files(archive)?;
    let blob = |digest: &str| {
        files
            .get(&format!("blobs/{}", digest.replacen(':', "/", 1)))
            .with_context(|| format!("no blob {digest} in {}", archive.display()))
    };
    let index = files.get("index.json").context("no index.json")?;
    let manifests = index["manifests"].as_array().context("no manifests")?;
    ensure!(
        manifests.len() == 1,
        "{} manifests in the archive",
        manifests.len()
    );
    let digest = manifests[0]["digest"]
        .as_str()
        .context("a manifest without a digest")?;
    let config_digest = blob(digest)?["config"]["digest"]
        .as_str()
        .context("a manifest without a config")?
        .to_owned();
    let config = &blob(&config_digest)?["config"];
    ensure!(
        config["Entrypoint"] == serde_json::json!(["/usr/local/bin/syscensus"]),
        "the image's entrypoint is {}",
        config["Entrypoint"]
    );
    let labels = &config["Labels"];
    for (label, value) in [
        ("org.opencontainers.image.version", version),
        ("org.opencontainers.image.revision", revision),
        (
            "org.opencontainers.image.source",
            "https://github.com/syscensus/syscensus",
        ),
    ] {
        ensure!(
            labels[label] == value,
            "the image's label {label} is {}, not {value}",
            labels[label]
        );
    }
    Ok(digest.to_owned())
}

/// The bytes of the regular files under `dir`.
fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += dir_size(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}
