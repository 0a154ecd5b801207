//! Kernel BTF (what `SYSCENSUS_KERNEL_BTF` may name): parsed or refused,
//! and the member offsets the agent asks for found or not, without a panic
//! or a hang.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use syscensus::btf::Btf;

fuzz_target!(|data: &[u8]| {
    let Ok(btf) = Btf::parse(data, Path::new("fuzz.btf")) else {
        return;
    };
    for (name, path) in [
        ("task_struct", "cgroups"),
        ("css_set", "dfl_cgrp"),
        ("cgroup", "kn"),
        ("kernfs_node", "id"),
        ("task_struct", "real_parent"),
        ("cgroup", "ancestors"),
        ("mnt_namespace", "ns.inum"),
        ("task_struct", "thread_info"),
        ("thread_info", "status"),
        ("outer", "in.y"),
        ("outer", "b"),
    ] {
        let _ = btf.member_offset(name, path);
    }
    let _ = btf.typedef_id("btf_trace_sys_enter");
});
