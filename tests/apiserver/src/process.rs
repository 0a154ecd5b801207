//! The fake API server as a child process (the `fake-apiserver` binary),
//! for tests that kill it and start it again.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

/// A running `fake-apiserver` process; dropping it kills the process.
#[derive(Debug)]
pub struct FakeApiServerProcess {
    child: Child,
    port: u16,
}

impl FakeApiServerProcess {
    /// Starts `binary` (in an integration test of this crate:
    /// `env!("CARGO_BIN_EXE_fake-apiserver")`) on `port` (0 for a free
    /// one), writing a kubeconfig to `kubeconfig` and creating the CRDs in
    /// `crd_files`; returns once the server listens.
    pub fn spawn(binary: &Path, port: u16, kubeconfig: &Path, crd_files: &[&Path]) -> Self {
        let mut command = Command::new(binary);
        command
            .arg("--port")
            .arg(port.to_string())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .stdout(Stdio::piped());
        for file in crd_files {
            command.arg("--crd-file").arg(file);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("failed to read the port from {}: {e}", binary.display()));
        let port = line.trim().parse().unwrap_or_else(|_| {
            let status = child.wait();
            panic!(
                "{} did not print its port (printed {line:?}, exit {status:?})",
                binary.display()
            )
        });
        Self { child, port }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the process and waits for it: its state is gone.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FakeApiServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
