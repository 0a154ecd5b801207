//! Runs the fake Kubernetes API server of the tests as a process, until it
//! is killed. State lives only in memory. Prints the port it listens on.
#![allow(
    unused_crate_dependencies,
    reason = "a binary of the package uses some of its dependencies"
)]

use std::{io::Write, path::PathBuf};

use anyhow::{Context, bail};
use clap::Parser;
use syscensus_fake_apiserver::FakeApiServer;

/// A fake Kubernetes API server on 127.0.0.1 (plain HTTP, in-memory state)
/// for tests; prints its port, then serves until killed.
#[derive(Debug, Parser)]
struct Args {
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write a kubeconfig for the server (no authentication,
    /// namespace `default`).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// A CustomResourceDefinition file (YAML, several documents allowed, or
    /// JSON) whose resources to serve; may be repeated.
    #[arg(long = "crd-file")]
    crd_files: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = FakeApiServer::start_on(args.port);
    for file in &args.crd_files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("failed to read {}", file.display()))?;
        for document in split_documents(&text) {
            let crd: serde_json::Value = serde_norway::from_str(document)
                .with_context(|| format!("failed to parse a document of {}", file.display()))?;
            if crd.is_null() {
                continue;
            }
            if let Err(e) = server.create_crd(&crd) {
                bail!("failed to create the CRD in {}: {e}", file.display());
            }
        }
    }
    if let Some(path) = &args.kubeconfig {
        server
            .write_kubeconfig(path)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", server.port())?;
    stdout.flush()?;
    drop(stdout);
    loop {
        std::thread::park();
    }
}

/// The documents of a YAML stream (separated by `---` lines).
fn split_documents(text: &str) -> Vec<&str> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" {
            documents.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    documents.push(&text[start..]);
    documents
        .into_iter()
        .filter(|d| !d.trim().is_empty())
        .collect()
}
