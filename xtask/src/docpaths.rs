//! `cargo xtask lint`: the repository paths that README.md,
//! ARCHITECTURE.md and DEVELOPERS.md name exist, so that the map of the code
//! stays one hop from each behaviour when files move.
use std::path::Path;

/// The top-level directories whose paths the documents name.
const ROOTS: [&str; 9] = [
    "agent/", "api/", "common/", "ebpf/", "deploy/", "tests/", "xtask/", "scripts/", "docs/",
];

/// The documents checked.
pub(crate) const DOCUMENTS: [&str; 3] = ["README.md", "ARCHITECTURE.md", "DEVELOPERS.md"];

/// The repository paths named in `text`: words that start with one of
/// [`ROOTS`], cut at the first character that cannot be part of a path.
/// Patterns (`<id>`, `*`, `{a,b}`) and paths after `target/` are not paths
/// of the tree and are left out.
pub(crate) fn named_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.char_indices() {
        let rest = &text[at..];
        let starts_word = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || "_-./".contains(c)));
        if !starts_word || !ROOTS.iter().any(|root| rest.starts_with(root)) {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || "_-./".contains(c)))
            .unwrap_or(rest.len());
        let next = rest[end..].chars().next();
        if matches!(next, Some('<' | '*' | '{' | '$')) {
            continue;
        }
        let path = rest[..end].trim_end_matches(['.', ',']);
        if path.contains("..") || path.ends_with('-') {
            continue;
        }
        found.push(path.to_owned());
    }
    found
}

/// The paths the documents under `root` name that do not exist, as
/// "DOCUMENT: path" lines.
pub(crate) fn check(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    for document in DOCUMENTS {
        let text = std::fs::read_to_string(root.join(document))?;
        for path in named_paths(&text) {
            if !root.join(&path).exists() {
                missing.push(format!("{document}: {path} does not exist"));
            }
        }
    }
    missing.sort();
    missing.dedup();
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cut_at_the_end_of_the_word() {
        let text = "see [agent/src/apply/] and agent/src/bpf/mod.rs, then `deploy/base`.";
        assert_eq!(
            named_paths(text),
            ["agent/src/apply/", "agent/src/bpf/mod.rs", "deploy/base"]
        );
    }

    #[test]
    fn patterns_and_words_inside_other_paths_are_not_paths() {
        let text = "refusals/<id>.json, target/bench/latest.json, tests/tests/*.rs, /work/agent/x";
        assert_eq!(named_paths(text), Vec::<String>::new());
    }
}
