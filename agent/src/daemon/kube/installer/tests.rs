#![allow(clippy::unwrap_used, reason = "tests")]
use super::*;

#[test]
fn only_plain_relative_paths() {
    assert!(is_plain_relative(Path::new("ns/deployment-web/app.json")));
    for bad in ["/etc/passwd", "../x", "a/../../b", "./x"] {
        assert!(!is_plain_relative(Path::new(bad)), "{bad}");
    }
}

#[test]
fn interrupted_writes_are_cleaned_and_empty_dirs_removed() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("ns/deployment-web")).unwrap();
    fs::write(
        dir.path().join("ns/deployment-web/.app.json.tmp42"),
        b"{\"def",
    )
    .unwrap();
    fs::write(dir.path().join("ns/deployment-web/app.json"), b"{}").unwrap();
    remove_temporaries(dir.path());
    assert!(
        !dir.path()
            .join("ns/deployment-web/.app.json.tmp42")
            .exists()
    );
    assert!(dir.path().join("ns/deployment-web/app.json").exists());
    fs::remove_file(dir.path().join("ns/deployment-web/app.json")).unwrap();
    remove_empty_parents(dir.path(), Path::new("ns/deployment-web/app.json"));
    assert!(!dir.path().join("ns").exists());
    assert!(dir.path().exists());
}
