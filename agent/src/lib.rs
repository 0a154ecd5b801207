//! syscensus: records which syscalls each container really makes, with eBPF,
//! and turns that census into seccomp profiles.
//!
//! The modules, top to bottom (each uses only those below it; `cargo xtask
//! lint` checks it, and ARCHITECTURE.md draws it):
//!
//! - the CLI edge: [`cli`] (parsing, dispatch, exit statuses), [`logging`];
//! - the commands: [`commands`], one module each;
//! - the services they drive: the node [`daemon`], the [`export`] pipeline,
//!   [`apply`];
//! - the domain: [`profile`], [`seccomp`], [`syscalls`], [`census`],
//!   [`recording`], [`basesets`], [`always_allowed`], [`oci_runtime`], the
//!   [`localhost`] profile contract, [`diff`], [`output`], [`refusal`] (what
//!   a container's enforced profile refuses, and where its runtime keeps it);
//! - the kernel side: [`bpf`], [`btf`], [`cgroup`], and the [`preflight`]
//!   check of what the node gives the agent.
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "the dev-dependencies serve the integration tests"
    )
)]
pub mod always_allowed;
pub mod apply;
pub mod approve;
pub mod basesets;
pub mod bpf;
pub mod btf;
pub mod census;
pub mod cgroup;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod container_recording;
pub mod daemon;
pub mod diff;
pub mod export;
pub mod localhost;
pub mod logging;
pub mod oci_runtime;
pub mod output;
pub mod preflight;
pub mod profile;
pub mod refusal;
pub mod seccomp;
pub mod syscalls;
