//! Kubernetes names: validation, and the names syscensus gives its objects.
//! Every path syscensus builds (export directories, installed profiles) is
//! made only of names that passed these checks.

/// A name that Kubernetes would not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    pub name: String,
    pub reason: &'static str,
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid name {:?}: {}", self.name, self.reason)
    }
}

impl std::error::Error for NameError {}

fn label_ok(label: &str, max: usize) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("empty label");
    }
    if label.len() > max {
        return Err("a label is longer than 63 characters");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("only lowercase letters, digits and '-' are allowed");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

/// An RFC 1123 label (namespaces, container names): at most 63 of
/// `[a-z0-9-]`, starting and ending alphanumeric.
pub fn validate_dns_label(name: &str) -> Result<(), NameError> {
    label_ok(name, 63).map_err(|reason| NameError {
        name: name.to_owned(),
        reason,
    })
}

/// An RFC 1123 subdomain as Kubernetes checks it for most object names: at
/// most 253 characters of dot-separated `[a-z0-9-]` parts, each starting and
/// ending alphanumeric (Kubernetes does not hold the parts to 63
/// characters). Never `.`, `..`, or anything with `/`.
pub fn validate_dns_subdomain(name: &str) -> Result<(), NameError> {
    let err = |reason| NameError {
        name: name.to_owned(),
        reason,
    };
    if name.len() > 253 {
        return Err(err("longer than 253 characters"));
    }
    for label in name.split('.') {
        label_ok(label, 253).map_err(err)?;
    }
    Ok(())
}

/// A short stable hash of `text`, hex (FNV-1a, 64 bits).
fn short_hash(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")[..10].to_owned()
}

/// `text` as a label value (at most 63 characters): unchanged if it fits,
/// else cut and ended with a hash of the whole, so distinct values stay
/// distinct.
pub fn label_value(text: &str) -> String {
    if text.len() <= 63 {
        return text.to_owned();
    }
    let mut cut = text[..text.floor_char_boundary(52)]
        .trim_end_matches(['-', '.', '_'])
        .to_owned();
    cut.push('-');
    cut.push_str(&short_hash(text));
    cut
}

/// The name of the ContainerProfile of a workload container:
/// `<recording>.<kind>.<workload>.<container>`, the kind lowercase. Each part
/// is already a valid name or label, so the whole is a valid DNS subdomain.
/// Recording and workload names may hold dots themselves, which makes the
/// joined name ambiguous (`a.deployment.b` + `c` and `a` + `b.deployment.c`
/// would meet): then a hash of the four parts is added as a last label. A
/// name longer than 253 characters is cut and ended with a hash of the whole
/// the same way, so that distinct containers keep distinct names.
pub fn object_name(recording: &str, kind: &str, workload: &str, container: &str) -> String {
    let kind = kind.to_ascii_lowercase();
    let mut full = format!("{recording}.{kind}.{workload}.{container}");
    if recording.contains('.') || workload.contains('.') {
        let parts = format!("{recording}\0{kind}\0{workload}\0{container}");
        full = format!("{full}.{}", short_hash(&parts));
    }
    if full.len() <= 253 {
        return full;
    }
    let hash = short_hash(&full);
    let keep = full.floor_char_boundary(253 - hash.len() - 1);
    let cut = full[..keep].trim_end_matches(['-', '.']).to_owned();
    format!("{cut}.{hash}")
}

/// The name of the LocalhostProfile of a workload container:
/// `<kind>-<workload>.<container>`, the kind lowercase, as its directory and
/// file are named in an export (`deployment-web.nginx` for
/// `deployment-web/nginx.json`). A container name holds no dot, so distinct
/// containers get distinct names; one longer than 253 characters is cut and
/// ended with a hash of the whole.
pub fn localhost_profile_name(kind: &str, workload: &str, container: &str) -> String {
    let full = format!("{}-{workload}.{container}", kind.to_ascii_lowercase());
    if full.len() <= 253 {
        return full;
    }
    let hash = short_hash(&full);
    let keep = full.floor_char_boundary(253 - hash.len() - 1);
    let cut = full[..keep].trim_end_matches(['-', '.']).to_owned();
    format!("{cut}.{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert!(validate_dns_label("nginx").is_ok());
        assert!(validate_dns_label("a-1").is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "..", &"a".repeat(64)] {
            assert!(validate_dns_label(bad).is_err(), "{bad:?}");
        }
        assert!(validate_dns_subdomain("web.deployment-api.nginx").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a..b",
            "../etc",
            "a/b",
            "a.",
            &"a".repeat(254),
        ] {
            assert!(validate_dns_subdomain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn object_names_are_valid_and_distinct() {
        assert_eq!(
            object_name("rec", "Deployment", "web", "nginx"),
            "rec.deployment.web.nginx"
        );
        // Valid workload names are dot-separated parts.
        let label = "w".repeat(63);
        let long = [label.as_str(); 3].join(".");
        let edge = object_name("rec", "Deployment", &"x".repeat(63), &"y".repeat(63));
        validate_dns_subdomain(&edge).expect("valid");
        let a = object_name("rec", "Deployment", &long, "a");
        let b = object_name("rec", "Deployment", &long, "b");
        assert_ne!(a, b);
        assert!(a.len() <= 253);
        validate_dns_subdomain(&a).expect("valid");
    }

    #[test]
    fn localhost_profile_names_are_valid_and_distinct() {
        assert_eq!(
            localhost_profile_name("Deployment", "web", "nginx"),
            "deployment-web.nginx"
        );
        let label = "w".repeat(63);
        let long = [label.as_str(); 3].join(".");
        let a = localhost_profile_name("StatefulSet", &long, &"a".repeat(63));
        let b = localhost_profile_name("StatefulSet", &long, &"b".repeat(63));
        assert_ne!(a, b);
        validate_dns_subdomain(&a).expect("valid");
        assert!(a.len() <= 253);
    }

    #[test]
    fn label_values_fit() {
        assert_eq!(label_value("short"), "short");
        let long = "x".repeat(100);
        let v = label_value(&long);
        assert!(v.len() <= 63);
        assert_ne!(label_value(&"x".repeat(101)), v);
    }
}
