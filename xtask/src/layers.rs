//! The import graph of agent/src, checked by `cargo xtask lint`: the
//! modules form layers (the CLI edge, the commands, the services they
//! drive, the domain, the kernel side) and each uses only its own layer and
//! those below; services do not use each other (apply reads exports); no
//! modules that share a parent use each other in a cycle; and the pure
//! modules (the daemon's state machine and its helpers, the Localhost
//! profile contract) do no I/O.
//!
//! Every `use` and every path in the code counts (macros' bodies aside).
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use syn::visit::Visit;

/// Each top-level module of agent/src and its layer, top (0) to bottom.
const LAYERS: &[(&str, u8, &str)] = &[
    ("cli", 0, "the CLI edge"),
    ("logging", 0, "the CLI edge"),
    ("commands", 1, "the commands"),
    ("daemon", 2, "the services"),
    ("export", 2, "the services"),
    ("apply", 2, "the services"),
    ("approve", 2, "the services"),
    ("localhost", 3, "the domain"),
    ("cluster", 3, "the domain"),
    ("profile", 3, "the domain"),
    ("seccomp", 3, "the domain"),
    ("syscalls", 3, "the domain"),
    ("census", 3, "the domain"),
    ("container_recording", 3, "the domain"),
    ("basesets", 3, "the domain"),
    ("always_allowed", 3, "the domain"),
    ("oci_runtime", 3, "the domain"),
    ("diff", 3, "the domain"),
    ("output", 3, "the domain"),
    ("refusal", 3, "the domain"),
    ("bpf", 4, "the kernel side"),
    ("btf", 4, "the kernel side"),
    ("cgroup", 4, "the kernel side"),
    ("preflight", 4, "the kernel side"),
];

/// The services' layer, whose modules do not use each other...
const SERVICES: u8 = 2;
/// ... but for these (user, used).
const SERVICE_USES: &[(&str, &str)] = &[("apply", "export")];

/// Modules without I/O, and what they may not use.
const PURE: &[&str] = &[
    "daemon::machine",
    "daemon::identity",
    "daemon::selection",
    "daemon::contribution",
    "localhost",
];
const IMPURE: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "std::io",
    "std::time::SystemTime",
    "std::thread",
    "tokio",
    "kube",
    "hyper",
    "tonic",
    "crate::daemon::shell",
    "crate::daemon::kube",
    "crate::daemon::cri",
    "crate::daemon::state",
    "crate::daemon::http",
    "crate::bpf::Tracer",
    "crate::cgroup",
    "crate::output",
];

/// A module path from the crate root (`daemon::machine`); the root is
/// empty.
type Module = Vec<String>;

fn show(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

/// One use of a path in a module.
#[derive(Clone, Debug)]
struct Use {
    module: Module,
    file: PathBuf,
    /// The path as written, made absolute where it is local (`crate::…`).
    path: Vec<String>,
}

/// Collects the paths a file uses.
struct Collector<'a> {
    file: &'a Path,
    stack: Vec<Module>,
    uses: Vec<Use>,
    /// Modules declared (`mod x;` or inline).
    modules: BTreeSet<Module>,
}

impl Collector<'_> {
    fn current(&self) -> &Module {
        self.stack.last().expect("a module")
    }

    /// `path` as seen from the current module: `crate::`, `super::` and
    /// `self::` made absolute (`crate::a::b`).
    fn absolute(&self, path: &[String]) -> Vec<String> {
        let mut module = self.current().clone();
        let mut rest = path;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                module.clear();
                rest = &rest[1..];
            }
            Some("self") => rest = &rest[1..],
            Some("super") => {
                while rest.first().map(String::as_str) == Some("super") {
                    module.pop();
                    rest = &rest[1..];
                }
            }
            _ => return path.to_vec(),
        }
        let mut out = vec!["crate".to_owned()];
        out.extend(module);
        out.extend(rest.iter().cloned());
        out
    }

    fn record(&mut self, path: Vec<String>) {
        let path = self.absolute(&path);
        self.uses.push(Use {
            module: self.current().clone(),
            file: self.file.to_path_buf(),
            path,
        });
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix.clone();
                if n.ident != "self" {
                    path.push(n.ident.to_string());
                }
                self.record(path);
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                if r.ident != "self" {
                    path.push(r.ident.to_string());
                }
                self.record(path);
            }
            syn::UseTree::Glob(_) => self.record(prefix.clone()),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        let mut module = self.current().clone();
        module.push(item.ident.to_string());
        self.modules.insert(module.clone());
        if item.content.is_some() {
            self.stack.push(module);
            syn::visit::visit_item_mod(self, item);
            self.stack.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut prefix = Vec::new();
        self.use_tree(&mut prefix, &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 || path.leading_colon.is_some() {
            self.record(segments);
        }
        syn::visit::visit_path(self, path);
    }
}

/// The module of a source file, from its path below `src`.
fn module_of(relative: &Path) -> Module {
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib") {
        parts.push(stem.to_owned());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The sources to check: every file below `src` but the binary's root.
fn sources(src: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src)?.to_path_buf();
        if relative == Path::new("main.rs") {
            continue;
        }
        let text = fs::read_to_string(&file)?;
        out.push((relative, text));
    }
    Ok(out)
}

/// Checks agent/src; returns the violations, one line each.
pub(crate) fn check(src: &Path) -> anyhow::Result<Vec<String>> {
    let mut modules: BTreeSet<Module> = BTreeSet::new();
    let mut uses = Vec::new();
    for (relative, text) in sources(src)? {
        let module = module_of(&relative);
        let file = syn::parse_file(&text)
            .with_context(|| format!("cannot parse {}", relative.display()))?;
        let shown = Path::new("agent/src").join(&relative);
        let mut collector = Collector {
            file: &shown,
            stack: vec![module.clone()],
            uses: Vec::new(),
            modules: BTreeSet::new(),
        };
        collector.visit_file(&file);
        modules.insert(module);
        modules.extend(collector.modules);
        uses.extend(collector.uses);
    }
    Ok(violations(&modules, &uses))
}

/// The deepest module `path` (absolute, `crate::…`) names.
fn target(modules: &BTreeSet<Module>, path: &[String]) -> Option<Module> {
    if path.first().map(String::as_str) != Some("crate") {
        return None;
    }
    let rest = &path[1..];
    (0..=rest.len())
        .rev()
        .map(|n| rest[..n].to_vec())
        .find(|m| modules.contains(m))
}

fn layer(top: &str) -> Option<(u8, &'static str)> {
    LAYERS
        .iter()
        .find(|(name, _, _)| *name == top)
        .map(|(_, layer, what)| (*layer, *what))
}

fn violations(modules: &BTreeSet<Module>, uses: &[Use]) -> Vec<String> {
    let mut out = BTreeSet::new();
    // Edges between modules, with one place each is made.
    let mut edges: BTreeMap<(Module, Module), &Use> = BTreeMap::new();
    for u in uses {
        if let Some(pure) = PURE.iter().find(|p| show(&u.module).starts_with(**p)) {
            let written = u.path.join("::");
            if let Some(bad) = IMPURE
                .iter()
                .find(|i| written == **i || written.starts_with(&format!("{i}::")))
            {
                out.insert(format!(
                    "{}: `{}` is pure ({pure}) but uses `{bad}`: do the I/O in the shell and pass the result in",
                    u.file.display(),
                    show(&u.module)
                ));
            }
        }
        let Some(to) = target(modules, &u.path) else {
            continue;
        };
        if to != u.module && !u.module.is_empty() && !to.is_empty() {
            edges.entry((u.module.clone(), to)).or_insert(u);
        }
    }
    for ((from, to), u) in &edges {
        let (a, b) = (&from[0], &to[0]);
        if a == b {
            continue;
        }
        let (Some((la, what_a)), Some((lb, what_b))) = (layer(a), layer(b)) else {
            for m in [a, b] {
                if layer(m).is_none() {
                    out.insert(format!(
                        "agent/src: module `{m}` is in no layer: add it to LAYERS in xtask/src/layers.rs"
                    ));
                }
            }
            continue;
        };
        if lb < la {
            out.insert(format!(
                "{}: `{}` ({what_a}) uses `{}` ({what_b}), which is above it: dependencies point down (CLI → commands → services → domain → kernel side)",
                u.file.display(),
                show(from),
                show(to)
            ));
        } else if la == lb && la == SERVICES && !SERVICE_USES.contains(&(a.as_str(), b.as_str())) {
            out.insert(format!(
                "{}: `{}` uses `{}`: services do not use each other; move what they share into the domain",
                u.file.display(),
                show(from),
                show(to)
            ));
        }
    }
    for cycle in sibling_cycles(&edges) {
        out.insert(cycle);
    }
    out.into_iter().collect()
}

/// The two children of their closest common ancestor that contain `a` and
/// `b`; none when one contains the other.
fn siblings(a: &[String], b: &[String]) -> Option<(Module, Module)> {
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if common == a.len() || common == b.len() {
        return None;
    }
    Some((a[..=common].to_vec(), b[..=common].to_vec()))
}

/// Cycles among modules that share a parent, one line each.
fn sibling_cycles(edges: &BTreeMap<(Module, Module), &Use>) -> Vec<String> {
    let mut graph: BTreeMap<Module, BTreeMap<Module, &Use>> = BTreeMap::new();
    for ((from, to), u) in edges {
        if let Some((a, b)) = siblings(from, to) {
            graph.entry(a).or_default().entry(b).or_insert(u);
        }
    }
    let mut out = Vec::new();
    let mut reported: BTreeSet<BTreeSet<Module>> = BTreeSet::new();
    for start in graph.keys() {
        // A path back to `start`, depth first.
        let mut stack: Vec<(Module, Vec<Module>)> = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).map(|n| n.keys()).into_iter().flatten() {
                if next == start {
                    let members: BTreeSet<Module> = path.iter().cloned().collect();
                    if reported.insert(members) {
                        let mut shown: Vec<String> = path.iter().map(|m| show(m)).collect();
                        shown.push(show(start));
                        let first = graph[start]
                            .get(&path.get(1).cloned().unwrap_or_else(|| start.clone()));
                        let file = first
                            .map(|u| u.file.display().to_string())
                            .unwrap_or_default();
                        out.push(format!(
                            "{file}: modules use each other in a cycle: {}",
                            shown.join(" → ")
                        ));
                    }
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn run(files: &[(&str, &str)]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let file = dir.path().join(path);
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(file, text).unwrap();
        }
        check(dir.path()).unwrap()
    }

    #[test]
    fn downward_uses_pass() {
        let found = run(&[
            (
                "lib.rs",
                "pub mod cli; pub mod commands; pub mod profile; pub mod bpf;",
            ),
            ("cli/mod.rs", "use crate::commands::record;"),
            ("commands/mod.rs", "pub mod record;"),
            (
                "commands/record.rs",
                "use crate::{profile::Profile, bpf::Tracer};",
            ),
            (
                "profile/mod.rs",
                "pub struct Profile; fn f() { crate::bpf::load(); }",
            ),
            ("bpf/mod.rs", "pub struct Tracer;"),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn upward_uses_services_and_cycles_are_found() {
        let found = run(&[
            (
                "lib.rs",
                "pub mod cli; pub mod daemon; pub mod export; pub mod profile; pub mod syscalls;",
            ),
            ("cli.rs", ""),
            (
                "daemon/mod.rs",
                "pub mod machine; pub mod shell; use crate::export::render;",
            ),
            (
                "daemon/machine.rs",
                "use super::shell::Shell; fn f() { let _ = std::fs::read(\"x\"); }",
            ),
            ("daemon/shell.rs", "use super::machine::Machine;"),
            ("export.rs", "use crate::cli::Args;"),
            ("profile.rs", "use crate::syscalls::Arch;"),
            ("syscalls.rs", "use super::profile::Profile;"),
        ]);
        let text = found.join("\n");
        assert!(
            text.contains("`export` (the services) uses `cli`"),
            "{text}"
        );
        assert!(text.contains("services do not use each other"), "{text}");
        assert!(text.contains("uses `std::fs`"), "{text}");
        assert!(text.contains("uses `crate::daemon::shell`"), "{text}");
        assert!(
            text.contains("daemon::machine → daemon::shell → daemon::machine"),
            "{text}"
        );
        assert!(text.contains("profile → syscalls → profile"), "{text}");
    }

    #[test]
    fn unknown_modules_must_be_placed() {
        let found = run(&[
            ("lib.rs", "pub mod misc; pub mod cli;"),
            ("misc.rs", "use crate::cli::X;"),
            ("cli.rs", ""),
        ]);
        assert!(
            found.iter().any(|f| f.contains("`misc` is in no layer")),
            "{found:?}"
        );
    }
}
