//! Errors reading and writing profiles.
use std::path::PathBuf;

/// A profile that could not be read, or written in the format asked for.
///
/// Every message is one line that names the file (with line and column where
/// the parser knows them) and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {}: {source}: check the path", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The parser, or a check made while parsing, rejected the text at a
    /// known position. `message` is the parser's, without its position.
    #[error("{}:{line}:{column}: {message}", origin.display())]
    Syntax {
        origin: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The file is well-formed but does not hold a usable profile.
    #[error("{}: {problem}", origin.display())]
    Invalid { origin: PathBuf, problem: Invalid },
    /// The profile cannot be written as a Security Profiles Operator object.
    #[error("cannot write a SeccompProfile object: {problem}")]
    Spo { problem: SpoProblem },
}

/// Why a well-formed file holds no usable profile.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    #[error("the file is empty: expected a seccomp profile (OCI, Docker or SeccompProfile object)")]
    Empty,
    #[error(
        "no SeccompProfile object in the file (found: {}): expected kind SeccompProfile of apiVersion security-profiles-operator.x-k8s.io/v1",
        found.join(", ")
    )]
    NoSeccompProfile { found: Vec<String> },
    #[error("holds {} SeccompProfile objects ({}): choose one with --name", names.len(), names.join(", "))]
    AmbiguousObject { names: Vec<String> },
    #[error("no SeccompProfile named {name:?} (the file holds: {}): check --name", names.join(", "))]
    NoSuchObject { name: String, names: Vec<String> },
    #[error("--name {name:?} selects an object, but the file is a plain profile: drop --name")]
    NotAnObjectFile { name: String },
    #[error(
        "unsupported apiVersion {api_version:?} for kind SeccompProfile: use security-profiles-operator.x-k8s.io/v1 (or v1beta1)"
    )]
    ApiVersion { api_version: String },
    #[error(
        "SeccompProfile {object:?} builds on the base profile {base:?} (spec.baseProfileName), which syscensus does not merge: use the merged profile the operator installed on the node (/var/lib/kubelet/seccomp/operator/{object}.json), or merge {base:?} into the object and remove baseProfileName"
    )]
    BaseProfile { object: String, base: String },
    #[error(
        "use either \"architectures\" or \"archMap\", not both (Docker rejects such a profile too)"
    )]
    ArchitecturesAndArchMap,
    #[error("syscalls[{index}] has both \"name\" and \"names\": use one of them")]
    NameAndNames { index: usize },
    #[error(
        "syscalls[{index}]: invalid minKernel {value:?}: expected a kernel version such as \"4.8\""
    )]
    MinKernel { index: usize, value: String },
}

/// Why a profile cannot be expressed as an SPO `SeccompProfile`.
#[derive(Debug, thiserror::Error)]
pub enum SpoProblem {
    #[error(
        "invalid object name {name:?}: {reason}; a Kubernetes object name is lowercase letters, digits, '-' and '.', starts and ends with a letter or digit, at most 253 characters (try {suggestion:?} with --name)"
    )]
    Name {
        name: String,
        reason: &'static str,
        suggestion: String,
    },
    #[error(
        "invalid namespace {namespace:?}: {reason}; a namespace is lowercase letters, digits and '-', starts and ends with a letter or digit, at most 63 characters"
    )]
    Namespace {
        namespace: String,
        reason: &'static str,
    },
    #[error(
        "the default errno {errno} cannot be expressed: SeccompProfile has no defaultErrnoRet and the operator's profiles fail with EPERM; use --errno 1 or --format oci"
    )]
    DefaultErrno { errno: u32 },
    #[error("SCMP_ACT_NOTIFY cannot be the default action of a SeccompProfile")]
    NotifyDefault,
    #[error(
        "syscalls[{index}] returns errno 0 (success without running the syscall), which SeccompProfile cannot express (it treats errnoRet 0 as unset, i.e. EPERM); use --format oci"
    )]
    ZeroErrno { index: usize },
    #[error("syscalls[{index}] has errnoRet {errno}, above SeccompProfile's maximum 4095")]
    ErrnoRange { index: usize, errno: u32 },
    #[error(
        "syscalls[{index}] compares an argument with {value}, above SeccompProfile's maximum {max} (a signed 64-bit value); use --format oci"
    )]
    ArgValue { index: usize, value: u64, max: u64 },
    #[error("syscalls[{index}] has {count} argument conditions, above SeccompProfile's maximum 6")]
    TooManyArgs { index: usize, count: usize },
    #[error("architecture {arch} is not one SeccompProfile accepts; use --format oci")]
    Architecture { arch: String },
}

/// At most `max` characters of `text`, on one line: control characters
/// (newlines included) become spaces, and a cut is marked with `...` and
/// the full length. Errors quote outside input through it, so that a
/// wrong file gets a one-line error and not its whole content.
pub fn excerpt(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let count = flat.chars().count();
    if count <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max).collect();
    format!("{cut}... ({count} characters)")
}

/// The longest quoted string a parser's message keeps whole.
const QUOTE_MAX: usize = 40;

/// A parser's message with every quoted string in it (serde quotes the
/// input it rejects, however long) cut to an excerpt, on one line.
pub(crate) fn shorten_quoted(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..=start]);
        let after = &rest[start + 1..];
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else {
            out.push_str(&excerpt(after, QUOTE_MAX));
            return excerpt(&out, 4 * QUOTE_MAX + 200);
        };
        out.push_str(&excerpt(&after[..end], QUOTE_MAX));
        out.push('"');
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    excerpt(&out, 4 * QUOTE_MAX + 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_cut_and_lines_joined() {
        let long = "x".repeat(500);
        let message = format!("invalid type: string \"{long}\", expected a profile");
        let short = shorten_quoted(&message);
        assert!(short.len() < 120, "{short}");
        assert!(
            short.ends_with("(500 characters)\", expected a profile"),
            "{short}"
        );
        assert_eq!(shorten_quoted("a \"b\\\"c\" d"), "a \"b\\\"c\" d");
        assert_eq!(excerpt("a\nb", 10), "a b");
    }
}
