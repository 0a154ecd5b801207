//! Property tests of the readers of kernel text and data: /proc/*/mountinfo,
//! /proc/*/cgroup, the kubelet's cgroup paths and the kernel's BTF. The
//! kernel writes these, but a container runtime, another mount namespace
//! or `SYSCENSUS_KERNEL_BTF` can put anything there: nothing may panic or
//! hang, and what is returned must have the shape it claims.
#![allow(clippy::unwrap_used, reason = "tests panic with context on failure")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, Instant},
};

use proptest::{prelude::*, test_runner::Config};
use syscensus::{
    btf::Btf,
    cgroup::{cgroup2_mount_in, cgroup2_path_in},
    daemon::identity::cgroup_path::{Driver, KubeCgroup, Qos, classify},
};

/// A proptest configuration with `cases` cases (or `PROPTEST_CASES`) and no
/// regression files written into the source tree.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Escapes a mount point the way the kernel's `seq_path` does in
/// mountinfo (fs/proc_namespace.c: space, tab, newline, backslash).
fn escape(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// `path` without the whitespace the kernel leaves unescaped in mountinfo
/// (anything but space, tab and newline), which the reader takes for a
/// field separator (see `mountinfo_fields_split_on_spaces_only`).
fn kernel_whitespace_only(path: String) -> String {
    path.chars()
        .filter(|c| !c.is_whitespace() || matches!(c, ' ' | '\t' | '\n'))
        .collect()
}

/// A mountinfo line that is not a cgroup2 hierarchy root: another file
/// system, a cgroup2 bind mount of a sub-tree, or junk.
fn other_mount_line() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            1u32..100,
            "/[a-z/]{0,10}",
            proptest::sample::select(vec!["proc", "sysfs", "cgroup", "tmpfs", "cgroup2x"])
        )
            .prop_map(|(id, point, fs)| format!("{id} 1 0:{id} / {point} rw - {fs} {fs} rw")),
        "/[a-z]{1,5}".prop_map(|root| format!("9 1 0:9 {root} /sub rw - cgroup2 cgroup2 rw")),
        "[ -~]{0,60}",
        Just("1 2 3 - cgroup2".to_owned()),
        Just(" - cgroup2 x".to_owned()),
    ]
}

fn pod_uid() -> impl Strategy<Value = String> {
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
}

fn container_id() -> impl Strategy<Value = String> {
    "[0-9a-f]{64}"
}

/// A path component of the kubelet's trees, right or nearly right.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("kubepods".to_owned()),
        Just("kubepods.slice".to_owned()),
        Just("kubelet-kubepods.slice".to_owned()),
        Just("burstable".to_owned()),
        Just("besteffort".to_owned()),
        Just("kubepods-burstable.slice".to_owned()),
        Just("kubepods-besteffort.slice".to_owned()),
        pod_uid().prop_map(|u| format!("pod{u}")),
        pod_uid().prop_map(|u| format!("pod{}", u.to_ascii_uppercase())),
        pod_uid().prop_map(|u| format!("kubepods-pod{}.slice", u.replace('-', "_"))),
        pod_uid().prop_map(|u| format!("kubepods-burstable-pod{}.slice", u.replace('-', "_"))),
        container_id(),
        "[0-9a-fA-F]{60,68}",
        container_id().prop_map(|id| format!("cri-containerd-{id}.scope")),
        container_id().prop_map(|id| format!("crio-conmon-{id}.scope")),
        "[a-z-]{0,12}\\.(scope|slice)",
        "[^/]{0,12}",
        Just("..".to_owned()),
        Just(String::new()),
    ]
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_canonical_uid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| {
            g.len() == n
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

fn check_classified(path: &str) {
    let Some(found) = classify(path) else {
        return;
    };
    if let Some(id) = found.container_id() {
        assert!(is_hex64(id), "{path}: container id {id:?}");
        assert!(found.pod_uid().is_some(), "{path}");
    }
    if let Some(uid) = found.pod_uid() {
        assert!(is_canonical_uid(uid), "{path}: pod uid {uid:?}");
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary text never panics the mountinfo and cgroup readers.
    #[test]
    fn proc_text_never_panics(text in prop_oneof![
        any::<String>(),
        "([0-9 :/a-z-]|\\\\[0-3][0-7][0-7]|\\\\|\n){0,80}",
    ]) {
        let _ = cgroup2_mount_in(&text);
        let _ = cgroup2_path_in(&text);
        check_classified(&text);
    }

    /// A cgroup2 root among other lines is found, its mount point
    /// unescaped to exactly what was mounted, however odd.
    #[test]
    fn mountinfo_escapes_round_trip(
        before in proptest::collection::vec(other_mount_line(), 0..5),
        after in proptest::collection::vec(other_mount_line(), 0..5),
        point in "/[^\0]{0,30}".prop_map(kernel_whitespace_only),
        options in "[a-z,=0-9]{0,20}",
    ) {
        let line = format!("30 1 0:26 / {} rw,{options} shared:4 - cgroup2 cgroup2 rw", escape(&point));
        let text = [before.join("\n"), line, after.join("\n")].join("\n");
        // A junk line before may itself look like a cgroup2 root.
        let first = cgroup2_mount_in(&before.join("\n"));
        let expected = first.unwrap_or_else(|| PathBuf::from(&point));
        prop_assert_eq!(cgroup2_mount_in(&text), Some(expected));
    }

    /// The `0::` line of /proc/PID/cgroup, wherever it is, gives its path
    /// without the `(deleted)` mark.
    #[test]
    fn proc_cgroup_path(
        v1 in proptest::collection::vec("[1-9][0-9]?:[a-z_=,]{1,12}:/[a-z/.]{0,20}", 0..6),
        path in "/[^\n\r]{0,40}",
        deleted in any::<bool>(),
    ) {
        let line = if deleted { format!("0::{path} (deleted)") } else { format!("0::{path}") };
        let mut lines = v1.clone();
        lines.insert(v1.len() / 2, line);
        let got = cgroup2_path_in(&lines.join("\n")).unwrap();
        prop_assert_eq!(got, path.trim_end_matches(" (deleted)"));
    }

    /// Paths made of the kubelet's components, right, wrong and mixed:
    /// never a panic; container ids are 64 hex digits, Pod UIDs canonical.
    #[test]
    fn kube_paths_have_valid_ids(
        prefix in proptest::collection::vec(component(), 0..3),
        rest in proptest::collection::vec(component(), 0..5),
        slashes in "/{1,2}",
    ) {
        let path = format!("{slashes}{}", [prefix, rest].concat().join(&slashes));
        check_classified(&path);
    }

    /// Every layout the kubelet makes classifies back to what made it.
    #[test]
    fn kube_paths_round_trip(
        uid in pod_uid(),
        id in container_id(),
        qos in proptest::sample::select(vec![Qos::Guaranteed, Qos::Burstable, Qos::BestEffort]),
        systemd in any::<bool>(),
        runtime in proptest::sample::select(vec!["cri-containerd", "crio", "docker"]),
        above in proptest::sample::select(vec!["", "/kubelet.slice"]),
    ) {
        let qos_name = match qos {
            Qos::Guaranteed => None,
            Qos::Burstable => Some("burstable"),
            Qos::BestEffort => Some("besteffort"),
        };
        let (path, expected) = if systemd {
            let stem = if above.is_empty() { "kubepods" } else { "kubelet-kubepods" };
            let mut path = format!("{above}/{stem}.slice");
            let mut pod_stem = stem.to_owned();
            if let Some(q) = qos_name {
                path.push_str(&format!("/{stem}-{q}.slice"));
                pod_stem = format!("{stem}-{q}");
            }
            path.push_str(&format!("/{pod_stem}-pod{}.slice/{runtime}-{id}.scope", uid.replace('-', "_")));
            (path, KubeCgroup::Container {
                driver: Driver::Systemd,
                qos,
                pod_uid: uid.clone(),
                container_id: id.clone(),
                runtime: runtime.to_owned(),
            })
        } else {
            let q = qos_name.map(|q| format!("/{q}")).unwrap_or_default();
            (format!("{above}/kubepods{q}/pod{uid}/{id}"), KubeCgroup::Container {
                driver: Driver::Cgroupfs,
                qos,
                pod_uid: uid.clone(),
                container_id: id.clone(),
                runtime: String::new(),
            })
        };
        prop_assert_eq!(classify(&path), Some(expected));
    }
}

// BTF: include/uapi/linux/btf.h.
const BTF_MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_STRUCT: u32 = 4;
const KIND_TYPEDEF: u32 = 8;

/// BTF made of `types` (words) and `strings`.
fn btf(types: &[u32], strings: &[u8]) -> Vec<u8> {
    let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let mut data = Vec::new();
    data.extend_from_slice(&BTF_MAGIC.to_ne_bytes());
    data.extend_from_slice(&[1, 0]);
    let (type_len, str_len) = (type_bytes.len() as u32, strings.len() as u32);
    for word in [24u32, 0, type_len, type_len, str_len] {
        data.extend_from_slice(&word.to_ne_bytes());
    }
    data.extend_from_slice(&type_bytes);
    data.extend_from_slice(strings);
    data
}

/// The size of the type record at `at` in a type section (as the kernel
/// lays them out), or `None` past the end or for an unknown kind.
fn record_len(types: &[u8], at: usize) -> Option<usize> {
    let info = u32::from_ne_bytes(types.get(at + 4..at + 8)?.try_into().ok()?);
    let vlen = (info & 0xffff) as usize;
    Some(
        12 + match (info >> 24) & 0x1f {
            1 | 14 | 17 => 4,
            3 => 12,
            4 | 5 | 15 | 19 => 12 * vlen,
            6 | 13 => 8 * vlen,
            2 | 7..=12 | 16 | 18 => 0,
            _ => return None,
        },
    )
}

/// The running kernel's BTF (readable without privileges).
fn vmlinux() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| {
        std::fs::read(syscensus::btf::VMLINUX_BTF)
            .expect("the running kernel's BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)")
    })
}

/// A real BTF snippet: the header, the first `count` types of the running
/// kernel and the first 8 kB of its strings.
fn vmlinux_snippet(count: usize) -> Vec<u8> {
    let data = vmlinux();
    let word = |i: usize| u32::from_ne_bytes(data[4 * i..4 * i + 4].try_into().unwrap()) as usize;
    let (hdr_len, type_off, type_len, str_off, str_len) =
        (word(1), word(2), word(3), word(4), word(5));
    let types = &data[hdr_len + type_off..hdr_len + type_off + type_len];
    let mut at = 0;
    for _ in 0..count {
        match record_len(types, at) {
            Some(len) if at + len <= types.len() => at += len,
            _ => break,
        }
    }
    let strings = &data[hdr_len + str_off..hdr_len + str_off + str_len.min(8192)];
    let words: Vec<u32> = types[..at]
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    btf(&words, strings)
}

/// What the agent asks of the kernel's BTF (bpf/offsets.rs).
fn use_btf(btf: &Btf) {
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
        ("", ""),
        ("a", "..."),
    ] {
        let _ = btf.member_offset(name, path);
    }
    let _ = btf.typedef_id("btf_trace_sys_enter");
    let _ = btf.typedef_id("");
}

fn parse_and_use(data: &[u8]) {
    if let Ok(btf) = Btf::parse(data, Path::new("fuzz.btf")) {
        use_btf(&btf);
    }
}

/// BTF with `struct outer { int a; struct { int b; }; struct inner in; }`,
/// as the unit tests build it, for structure-aware mutation.
fn sample_btf() -> Vec<u8> {
    let strings = b"\0int\0outer\0a\0b\0inner\0in\0x\0y\0long\0btf_trace_sys_enter\0";
    let off = |s: &str| -> u32 {
        let needle = format!("\0{s}\0");
        let at = strings
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap();
        (at + 1) as u32
    };
    btf(
        &[
            off("int"),
            KIND_INT << 24,
            4,
            32,
            0,
            KIND_STRUCT << 24 | 1,
            4,
            off("b"),
            1,
            0,
            off("inner"),
            KIND_STRUCT << 24 | 2,
            16,
            off("x"),
            4,
            0,
            off("y"),
            1,
            64,
            off("long"),
            KIND_INT << 24,
            8,
            64,
            off("outer"),
            KIND_STRUCT << 24 | 3,
            24,
            off("a"),
            1,
            0,
            0,
            2,
            32,
            off("in"),
            3,
            64,
            off("btf_trace_sys_enter"),
            KIND_TYPEDEF << 24,
            5,
        ],
        strings,
    )
}

/// A mutation of `data`: truncated, bits flipped, a word overwritten with
/// an extreme value, or bytes inserted.
#[derive(Clone, Debug)]
enum Mutation {
    Truncate(proptest::sample::Index),
    Flip(proptest::sample::Index, u8),
    Word(proptest::sample::Index, u32),
    Insert(proptest::sample::Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let extreme = prop_oneof![
        Just(0u32),
        Just(1),
        Just(0xffff),
        Just(0x7fff_ffff),
        Just(u32::MAX),
        any::<u32>()
    ];
    prop_oneof![
        1 => any::<proptest::sample::Index>().prop_map(Mutation::Truncate),
        4 => (any::<proptest::sample::Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        3 => (any::<proptest::sample::Index>(), extreme).prop_map(|(i, w)| Mutation::Word(i, w)),
        1 => (any::<proptest::sample::Index>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn mutate(data: &mut Vec<u8>, mutation: &Mutation) {
    if data.is_empty() {
        return;
    }
    match mutation {
        Mutation::Truncate(i) => data.truncate(i.index(data.len())),
        Mutation::Flip(i, bit) => {
            let i = i.index(data.len());
            data[i] ^= 1 << bit;
        }
        Mutation::Word(i, word) => {
            // Word-aligned, where BTF keeps its fields.
            let i = i.index(data.len()) & !3;
            let end = (i + 4).min(data.len());
            data[i..end].copy_from_slice(&word.to_ne_bytes()[..end - i]);
        }
        Mutation::Insert(i, bytes) => {
            let i = i.index(data.len());
            data.splice(i..i, bytes.iter().copied());
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary bytes, and arbitrary bytes behind a valid header.
    #[test]
    fn btf_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        header in any::<bool>(),
    ) {
        let data = if header {
            let mut data = btf(&[], b"\0");
            data.truncate(24);
            data.extend_from_slice(&bytes);
            data
        } else {
            bytes
        };
        parse_and_use(&data);
    }

    /// The sample BTF and a real snippet of the kernel's, mutated.
    #[test]
    fn mutated_btf_never_panics(
        real in any::<bool>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut data = if real { vmlinux_snippet(200) } else { sample_btf() };
        for m in &mutations {
            mutate(&mut data, m);
        }
        parse_and_use(&data);
    }
}

proptest! {
    #![proptest_config(config(4))]

    /// The whole running kernel's BTF with its header mangled.
    #[test]
    fn mutated_vmlinux_header_never_panics(
        at in 0usize..24,
        word in prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()],
    ) {
        let mut data = vmlinux().to_vec();
        let at = at & !3;
        data[at..at + 4].copy_from_slice(&word.to_ne_bytes());
        parse_and_use(&data);
    }
}

/// The real snippet parses, so that mutating it tests more than the
/// header checks.
#[test]
fn real_btf_snippet_parses() {
    Btf::parse(&vmlinux_snippet(200), Path::new("snippet")).unwrap();
    let btf = Btf::parse(&sample_btf(), Path::new("sample")).unwrap();
    assert_eq!(btf.member_offset("outer", "in.y").unwrap(), 16);
    // The fuzz target's seeds: a cut of a kernel's BTF, and the sample.
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/btf");
    for seed in ["vmlinux-head.btf", "sample.btf"] {
        let data = std::fs::read(seeds.join(seed)).unwrap();
        Btf::parse(&data, Path::new(seed)).unwrap();
    }
    assert_eq!(
        std::fs::read(seeds.join("sample.btf")).unwrap(),
        sample_btf()
    );
}

/// A struct whose anonymous member sits at bit offset 2^32 - 32 and holds
/// a member at bit 32: the sum does not fit the u32 of BTF offsets, and
/// the member is reported missing instead of wrapping to a wrong offset.
#[test]
fn btf_offsets_do_not_overflow() {
    let strings = b"\0int\0outer\0b\0";
    let data = btf(
        &[
            1,
            KIND_INT << 24,
            4,
            32,
            // 2: struct { int pad; int b; } with b at bit 32.
            0,
            KIND_STRUCT << 24 | 1,
            8,
            11,
            1,
            32,
            // 3: struct outer { <anonymous 2> at bit 2^32 - 32 }.
            5,
            KIND_STRUCT << 24 | 1,
            8,
            0,
            2,
            u32::MAX - 31,
        ],
        strings,
    );
    let btf = Btf::parse(&data, Path::new("overflow")).unwrap();
    assert!(btf.member_offset("outer", "b").is_err());
}

/// A struct of anonymous members that are that struct again: the search
/// for a missing member would descend 8 levels into every one of them,
/// 40^9 steps; the search gives up after a bounded number.
#[test]
fn btf_member_search_is_bounded() {
    let strings = b"\0int\0task_struct\0";
    let mut types = vec![1, KIND_INT << 24, 4, 32];
    let members = 40u32;
    types.extend_from_slice(&[5, KIND_STRUCT << 24 | members, 8]);
    for _ in 0..members {
        types.extend_from_slice(&[0, 2, 0]);
    }
    let btf = Btf::parse(&btf(&types, strings), Path::new("cycle")).unwrap();
    let started = Instant::now();
    assert!(btf.member_offset("task_struct", "cgroups").is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// An octal escape above \377 in a mountinfo mount point: the digits are
/// not a byte, so it is kept as text.
#[test]
fn mountinfo_escapes_above_a_byte_do_not_panic() {
    let text = "30 1 0:26 / /a\\777 rw - cgroup2 cgroup2 rw\n";
    let _ = cgroup2_mount_in(text);
}

/// The kernel separates mountinfo fields with single spaces and escapes
/// only space, tab, newline and backslash; a mount point holding another
/// whitespace character (`\r`, `\x0b`, `\x0c`, U+0085, U+2003, ...) is
/// kept whole.
#[test]
fn mountinfo_fields_split_on_spaces_only() {
    let text = "30 1 0:26 / /sys/fs/cgroup\u{2003}x rw - cgroup2 cgroup2 rw\n";
    assert_eq!(
        cgroup2_mount_in(text),
        Some(PathBuf::from("/sys/fs/cgroup\u{2003}x"))
    );
}

/// This machine's own files, as the agent reads them.
#[test]
fn this_machines_files() {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(cgroup2_mount_in(&mountinfo).is_some());
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = cgroup2_path_in(&cgroup).unwrap();
    check_classified(&path);
}
