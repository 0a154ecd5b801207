//! The kernel program lives in `main.rs`; this empty library target lets the
//! agent declare a build-dependency on the crate, so that cargo rebuilds the
//! agent (and so the embedded object) when the program changes.
#![no_std]
#![allow(
    unused_crate_dependencies,
    reason = "the program's dependencies are main.rs's; this target is empty"
)]
