//! `cargo xtask gen-syscalls`: writes `agent/src/syscalls/tables.rs` from
//! libseccomp's syscall table, vendored as `xtask/data/libseccomp-syscalls.csv`.
//!
//! The CSV has a header line naming the kernel version the table was made
//! from and the columns, then one row per syscall name: for each architecture
//! a number column (`PNR` where the syscall does not exist there) and a
//! kernel-version column, which the tables do not use.
use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail, ensure};

/// The vendored CSV, relative to the workspace root.
const CSV: &str = "xtask/data/libseccomp-syscalls.csv";
/// Where the CSV came from; its `commit` row names the upstream commit.
const SOURCES: &str = "xtask/data/SOURCES.md";
/// The generated file.
const OUTPUT: &str = "agent/src/syscalls/tables.rs";

/// The architectures that get a table: CSV column and name of the static.
/// `arm` is AArch32, whose syscalls an aarch64 kernel runs as compat ones.
const ARCHES: [(&str, &str); 5] = [
    ("x86_64", "X86_64"),
    ("x86", "X86"),
    ("x32", "X32"),
    ("aarch64", "AARCH64"),
    ("arm", "ARM"),
];

/// `__X32_SYSCALL_BIT`: x32 syscalls are the x86_64 kernel's with this bit
/// set. The tables store x32 numbers without it.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// An entry of the vendored CSV that is wrong and is left out of the tables.
struct Omission {
    arch: &'static str,
    name: &'static str,
    /// The number the CSV gives, checked so that an updated CSV that changes
    /// the entry makes the generator stop and this list be reviewed.
    number: u32,
}

/// Entries of the vendored CSV that the kernel does not have. The CSV comes
/// from a commit that regenerated the whole table (see SOURCES.md); these rows
/// got the asm-generic numbers of the `*64` calls, or x86_64-only calls in the
/// x32 column. None of them is in the kernel's
/// [syscall_32.tbl](https://github.com/torvalds/linux/blob/v6.16/arch/x86/entry/syscalls/syscall_32.tbl)
/// (i386 reaches accept, semop and semtimedop only through socketcall and ipc)
/// or, for x86_64 and x32, in
/// [syscall_64.tbl](https://github.com/torvalds/linux/blob/v6.16/arch/x86/entry/syscalls/syscall_64.tbl)
/// (epoll_ctl_old, epoll_wait_old, get_thread_area and set_thread_area are in
/// it with ABI `64`, so not in x32's table), nor in libseccomp 2.5.4's tables.
/// Most of them take numbers that belong to other syscalls (x86_64 25 is
/// mremap, not fcntl64), which the generator would refuse anyway.
const OMIT: &[Omission] = &[
    omit("x86", "accept", 202),
    omit("x86", "semop", 193),
    omit("x86", "semtimedop", 192),
    omit("x86_64", "fadvise64_64", 223),
    omit("x86_64", "fcntl64", 25),
    omit("x86_64", "fstat64", 80),
    omit("x86_64", "fstatat64", 79),
    omit("x86_64", "fstatfs64", 44),
    omit("x86_64", "ftruncate64", 46),
    omit("x86_64", "mmap2", 222),
    omit("x86_64", "sendfile64", 71),
    omit("x86_64", "statfs64", 43),
    omit("x86_64", "truncate64", 45),
    omit("x32", "epoll_ctl_old", 214),
    omit("x32", "epoll_wait_old", 215),
    omit("x32", "fadvise64_64", 223),
    omit("x32", "fcntl64", 25),
    omit("x32", "fstat64", 80),
    omit("x32", "fstatat64", 79),
    omit("x32", "fstatfs64", 44),
    omit("x32", "ftruncate64", 46),
    omit("x32", "get_thread_area", 211),
    omit("x32", "mmap2", 222),
    omit("x32", "sendfile64", 71),
    omit("x32", "set_thread_area", 205),
    omit("x32", "statfs64", 43),
    omit("x32", "truncate64", 45),
];

const fn omit(arch: &'static str, name: &'static str, number: u32) -> Omission {
    Omission { arch, name, number }
}

/// Generates the tables; with `check`, only compares them with the
/// checked-in file and fails if it differs.
pub(crate) fn generate(check: bool) -> anyhow::Result<()> {
    let root = workspace_root();
    let csv_path = root.join(CSV);
    let csv = fs::read_to_string(&csv_path)
        .with_context(|| format!("failed to read {}", csv_path.display()))?;
    let sources_path = root.join(SOURCES);
    let sources = fs::read_to_string(&sources_path)
        .with_context(|| format!("failed to read {}", sources_path.display()))?;

    let commit = source_commit(&sources).with_context(|| format!("in {SOURCES}"))?;
    let table = parse(&csv).with_context(|| format!("failed to parse {CSV}"))?;
    let tables = build(&table)?;
    let rendered = render(&table, &tables, &commit);

    let out_path = root.join(OUTPUT);
    if check {
        let current = fs::read_to_string(&out_path)
            .with_context(|| format!("failed to read {}", out_path.display()))?;
        if current != rendered {
            let line = first_difference(&current, &rendered);
            bail!(
                "{OUTPUT} is not what `cargo xtask gen-syscalls` generates from {CSV} \
                 (first difference at line {line}): run `cargo xtask gen-syscalls` and \
                 commit the result"
            );
        }
        return Ok(());
    }
    fs::write(&out_path, &rendered)
        .with_context(|| format!("failed to write {}", out_path.display()))?;
    let counts: Vec<String> = tables
        .iter()
        .map(|t| format!("{} {}", t.arch, t.by_number.len()))
        .collect();
    writeln!(
        std::io::stdout().lock(),
        "wrote {OUTPUT}: {} syscalls; {}",
        table.names.len(),
        counts.join(", ")
    )?;
    Ok(())
}

fn workspace_root() -> PathBuf {
    // xtask/ sits directly under the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The upstream commit from the `| commit | `<hash>` |` row of SOURCES.md.
fn source_commit(sources: &str) -> anyhow::Result<String> {
    let row = sources
        .lines()
        .find(|l| l.trim_start().starts_with("| commit |"))
        .context("no `| commit | ... |` row")?;
    let commit = row
        .split('`')
        .nth(1)
        .context("the commit row has no `hash` in backquotes")?;
    ensure!(
        commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "the commit row does not hold a 40-digit commit hash: {commit:?}"
    );
    Ok(commit.to_owned())
}

/// The parsed CSV.
struct Csv {
    /// The kernel version of the header line (`v6.16.0`).
    kernel: String,
    /// Every syscall name, in CSV order.
    names: Vec<String>,
    /// Per architecture of [`ARCHES`], in that order: (name, number) of the
    /// rows that have a number there, x32 numbers without the x32 bit.
    columns: Vec<Vec<(String, u32)>>,
}

fn parse(csv: &str) -> anyhow::Result<Csv> {
    let mut lines = csv.lines().enumerate();
    let (_, header) = lines.next().context("the file is empty")?;
    let kernel = header
        .strip_prefix("#syscall (")
        .and_then(|rest| rest.split([' ', ')']).next())
        .filter(|v| v.starts_with('v'))
        .with_context(|| format!("header does not start `#syscall (vX.Y.Z ...)`: {header:?}"))?
        .to_owned();
    let head: Vec<&str> = header.split(',').collect();
    let indices = ARCHES
        .iter()
        .map(|&(arch, _)| {
            head.iter()
                .position(|&c| c == arch)
                .with_context(|| format!("header has no {arch} column"))
        })
        .collect::<anyhow::Result<Vec<usize>>>()?;

    let mut names = Vec::new();
    let mut columns = vec![Vec::new(); ARCHES.len()];
    for (i, line) in lines {
        let line_no = i + 1;
        let cells: Vec<&str> = line.split(',').collect();
        ensure!(
            cells.len() == head.len(),
            "line {line_no} has {} fields, the header {}",
            cells.len(),
            head.len()
        );
        let name = cells[0];
        ensure!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "line {line_no}: unexpected syscall name {name:?}"
        );
        for (column, (&index, &(arch, _))) in columns.iter_mut().zip(indices.iter().zip(&ARCHES)) {
            let cell = cells[index];
            if cell == "PNR" {
                continue;
            }
            let mut number: u32 = cell.parse().with_context(|| {
                format!("line {line_no}: {name} on {arch}: bad number {cell:?}")
            })?;
            if arch == "x32" {
                // The CSV stores x32 numbers without the bit; clear it in case
                // a later version does not.
                number &= !X32_SYSCALL_BIT;
            }
            column.push((name.to_owned(), number));
        }
        names.push(name.to_owned());
    }
    Ok(Csv {
        kernel,
        names,
        columns,
    })
}

/// One architecture's table, ready to render.
struct Table {
    arch: &'static str,
    ident: &'static str,
    by_number: Vec<(u32, String)>,
    by_name: Vec<(String, u32)>,
}

fn build(csv: &Csv) -> anyhow::Result<Vec<Table>> {
    let mut sorted_names = csv.names.clone();
    sorted_names.sort();
    if let Some(dup) = sorted_names.windows(2).find(|w| w[0] == w[1]) {
        bail!("{CSV} has two rows for {}", dup[0]);
    }

    let mut tables = Vec::new();
    for (column, &(arch, ident)) in csv.columns.iter().zip(&ARCHES) {
        let mut entries = column.clone();
        for o in OMIT.iter().filter(|o| o.arch == arch) {
            let at = entries.iter().position(|(n, _)| n == o.name);
            match at.map(|i| (i, entries[i].1)) {
                Some((i, number)) if number == o.number => {
                    entries.remove(i);
                }
                Some((_, number)) => bail!(
                    "{CSV} now gives {} on {arch} number {number}, not {}: review OMIT in \
                     xtask/src/syscalls.rs against the new table",
                    o.name,
                    o.number
                ),
                None => bail!(
                    "{CSV} no longer has {} on {arch}: review OMIT in xtask/src/syscalls.rs \
                     against the new table",
                    o.name
                ),
            }
        }

        let mut by_number_map: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
        for (name, number) in &entries {
            by_number_map.entry(*number).or_default().push(name);
        }
        let clashes: Vec<String> = by_number_map
            .iter()
            .filter(|(_, names)| names.len() > 1)
            .map(|(number, names)| format!("{number}: {}", names.join(", ")))
            .collect();
        ensure!(
            clashes.is_empty(),
            "{CSV} gives one number to several syscalls on {arch} ({}): find out which \
             are wrong and add them to OMIT in xtask/src/syscalls.rs",
            clashes.join("; ")
        );

        let by_number: Vec<(u32, String)> = by_number_map
            .into_iter()
            .map(|(number, names)| (number, names[0].to_owned()))
            .collect();
        let mut by_name = entries;
        by_name.sort();
        tables.push(Table {
            arch,
            ident,
            by_number,
            by_name,
        });
    }
    Ok(tables)
}

fn render(csv: &Csv, tables: &[Table], commit: &str) -> String {
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push('\n');
    };
    line("//! Syscall names and numbers per architecture, with libseccomp's names.");
    line("//!");
    line("//! GENERATED, do not edit: `cargo xtask gen-syscalls` writes this file from");
    line("//! `xtask/data/libseccomp-syscalls.csv`, libseccomp's `src/syscalls.csv` at");
    line(&format!(
        "//! commit {commit} (the syscall table of Linux {}),",
        csv.kernel
    ));
    line("//! whose provenance is in `xtask/data/SOURCES.md`. CI runs");
    line("//! `cargo xtask gen-syscalls --check`, which fails when this file is stale.");
    line("//!");
    line("//! x32 numbers are without the x32 bit (0x40000000). Syscalls the CSV marks");
    line("//! `PNR` on an architecture are not in its table, nor are these entries that");
    line("//! the CSV gets wrong (`OMIT` in `xtask/src/syscalls.rs` says why):");
    for &(arch, _) in &ARCHES {
        let names: Vec<&str> = OMIT
            .iter()
            .filter(|o| o.arch == arch)
            .map(|o| o.name)
            .collect();
        if !names.is_empty() {
            wrap_list(&mut line, &format!("//! - {arch}: "), "//!   ", &names);
        }
    }
    line("");
    line("/// One architecture's syscalls.");
    line("pub(super) struct Table {");
    line("    /// (number, name), sorted by number.");
    line("    pub by_number: &'static [(u32, &'static str)],");
    line("    /// (name, number), sorted by name in byte order.");
    line("    pub by_name: &'static [(&'static str, u32)],");
    line("}");
    for table in tables {
        line("");
        line(&format!(
            "/// {} syscalls: {}.",
            table.arch,
            table.by_number.len()
        ));
        line(&format!(
            "pub(super) static {}: Table = Table {{",
            table.ident
        ));
        line("    by_number: &[");
        for (number, name) in &table.by_number {
            line(&format!("        ({number}, \"{name}\"),"));
        }
        line("    ],");
        line("    by_name: &[");
        for (name, number) in &table.by_name {
            line(&format!("        (\"{name}\", {number}),"));
        }
        line("    ],");
        line("};");
    }
    let mut all = csv.names.clone();
    all.sort();
    all.dedup();
    line("");
    line("/// Every syscall name in the CSV, for any architecture, sorted in byte order.");
    line("pub(super) static ALL_NAMES: &[&str] = &[");
    for name in &all {
        line(&format!("    \"{name}\","));
    }
    line("];");
    line("");
    line("/// The libseccomp commit and kernel version the tables were generated from.");
    line(&format!(
        "pub(super) const SOURCE: &str =\n    \"libseccomp {commit} (kernel {})\";",
        csv.kernel
    ));
    out
}

/// Emits `first` followed by `items` joined with ", ", wrapping lines at 80
/// columns and starting continuation lines with `cont`.
fn wrap_list(line: &mut impl FnMut(&str), first: &str, cont: &str, items: &[&str]) {
    let mut current = first.to_owned();
    let mut at_start = true;
    for (i, item) in items.iter().enumerate() {
        let sep = if i + 1 < items.len() { "," } else { "" };
        let piece = format!("{item}{sep}");
        if !at_start && current.len() + 1 + piece.len() > 80 {
            line(current.trim_end());
            current = cont.to_owned();
            at_start = true;
        }
        if !at_start {
            current.push(' ');
        }
        current.push_str(&piece);
        at_start = false;
    }
    line(&current);
}

/// The 1-based number of the first line where `a` and `b` differ.
fn first_difference(a: &str, b: &str) -> usize {
    let mut a_lines = a.lines();
    let mut b_lines = b.lines();
    let mut n = 1;
    loop {
        match (a_lines.next(), b_lines.next()) {
            (Some(x), Some(y)) if x == y => n += 1,
            _ => return n,
        }
    }
}
