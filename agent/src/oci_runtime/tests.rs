#![allow(clippy::unwrap_used, reason = "tests")]
use super::*;

/// `runc --version` of Debian 12's runc package.
const RUNC_VERSION: &str = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\ngo: go1.19.8\nlibseccomp: 2.5.4\n";
/// `runc --version` of runc built from the v1.2.8 tag with its Makefile's flags.
const RUNC_128_VERSION: &str = "runc version 1.2.8\ncommit: eeb7e6024f9ee43876301b1d23c353384fa6dcdd\nspec: 1.2.0\ngo: go1.23.5\nlibseccomp: 2.5.4\n";
/// `crun --version` of Debian 12's crun package.
const CRUN_VERSION: &str = "crun version 1.8.1\ncommit: f8a096be060b22ccd3d5f3ebe44108517fbf6c30\nrundir: /run/crun\nspec: 1.0.0\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL\n";
/// The annotations of `runc features` of Debian 12's runc package.
const RUNC_FEATURES: &str = r#"{"ociVersionMin": "1.0.0", "ociVersionMax": "1.0.2-dev",
    "annotations": {
        "io.github.seccomp.libseccomp.version": "2.5.4",
        "org.opencontainers.runc.checkpoint.enabled": "true",
        "org.opencontainers.runc.commit": "1.1.5+ds1-1+deb12u1",
        "org.opencontainers.runc.version": "1.1.5+ds1"
    }}"#;

#[test]
fn versions_parse_and_order() {
    assert_eq!(Version::parse("1.1.5+ds1"), Some(Version::new(1, 1, 5)));
    assert_eq!(Version::parse("v1.2.8"), Some(Version::new(1, 2, 8)));
    assert_eq!(Version::parse("1.8"), Some(Version::new(1, 8, 0)));
    assert_eq!(Version::parse("1.14"), Some(Version::new(1, 14, 0)));
    let rc = Version::parse("1.4.0-rc.3").unwrap();
    assert_eq!(rc.pre.as_deref(), Some("rc.3"));
    assert!(rc < Version::new(1, 4, 0) && rc > Version::new(1, 3, 6));
    assert_eq!(rc.to_string(), "1.4.0-rc.3");
    for bad in [
        "",
        "1",
        "x.y",
        "1.2.3.4",
        "1..2",
        "1.2-",
        "release-20240513.0",
        "1.2.3a",
    ] {
        assert_eq!(Version::parse(bad), None, "{bad:?}");
    }
    assert!(Version::new(1, 10, 0) > Version::new(1, 9, 9));
}

#[test]
fn version_banners_of_the_installed_runtimes() {
    assert_eq!(
        from_version_output(RUNC_VERSION),
        Some(Identity {
            runtime: Runtime::Runc,
            version: Some(Version::new(1, 1, 5))
        })
    );
    assert_eq!(
        from_version_output(RUNC_128_VERSION).unwrap().version,
        Some(Version::new(1, 2, 8))
    );
    assert_eq!(
        from_version_output(CRUN_VERSION),
        Some(Identity {
            runtime: Runtime::Crun,
            version: Some(Version::new(1, 8, 1))
        })
    );
    let runsc = from_version_output("runsc version release-20240513.0\nspec: 1.1.0\n").unwrap();
    assert_eq!((runsc.runtime, runsc.version), (Runtime::Runsc, None));
    let kata = from_version_output("kata-runtime  : 3.2.0\n   commit   : abc\n").unwrap();
    assert_eq!(kata.runtime, Runtime::Kata);
    assert_eq!(kata.version, Some(Version::new(3, 2, 0)));
    assert_eq!(from_version_output("podman version 4.3.1"), None);
    assert_eq!(from_version_output(""), None);
}

#[test]
fn features_annotations() {
    assert_eq!(
        from_features_json(RUNC_FEATURES),
        Some(Identity {
            runtime: Runtime::Runc,
            version: Some(Version::new(1, 1, 5))
        })
    );
    let crun = r#"{"annotations": {"run.oci.crun.version": "1.29.1", "run.oci.crun.commit": "x"}}"#;
    assert_eq!(
        from_features_json(crun).unwrap().version,
        Some(Version::new(1, 29, 1))
    );
    assert_eq!(from_features_json(r#"{"annotations": {}}"#), None);
    assert_eq!(from_features_json("unknown command features"), None);
}

#[test]
fn containerd_info() {
    let runc = r#"{"sandboxID": "x", "pid": 1, "runtimeType": "io.containerd.runc.v2", "runtimeOptions": {"systemd_cgroup": true}}"#;
    assert_eq!(from_containerd_info(runc).unwrap().runtime, Runtime::Runc);
    let crun = r#"{"runtimeType": "io.containerd.runc.v2", "runtimeOptions": {"BinaryName": "/usr/bin/crun"}}"#;
    assert_eq!(from_containerd_info(crun).unwrap().runtime, Runtime::Crun);
    let runsc = r#"{"runtimeType": "io.containerd.runsc.v1"}"#;
    assert_eq!(from_containerd_info(runsc).unwrap().runtime, Runtime::Runsc);
    let kata = r#"{"runtimeType": "io.containerd.kata.v2"}"#;
    assert_eq!(from_containerd_info(kata).unwrap().runtime, Runtime::Kata);
    assert_eq!(
        from_containerd_info(r#"{"runtimeType": "io.example.v1"}"#),
        None
    );
    let odd = r#"{"runtimeType": "io.containerd.runc.v2", "runtimeOptions": {"BinaryName": "/opt/bin/myrt"}}"#;
    assert_eq!(
        from_containerd_info(odd),
        None,
        "an unknown binary is not runc"
    );
}

#[test]
fn exe_paths_and_comms() {
    assert_eq!(from_exe_path("/usr/sbin/runc"), Some(Runtime::Runc));
    assert_eq!(
        from_exe_path("/usr/bin/crun (deleted)"),
        Some(Runtime::Crun)
    );
    assert_eq!(
        from_exe_path("/memfd:runc_cloned:/proc/self/exe (deleted)"),
        Some(Runtime::Runc)
    );
    assert_eq!(
        from_exe_path("/usr/local/bin/runc.amd64"),
        Some(Runtime::Runc)
    );
    assert_eq!(
        from_exe_path("/usr/bin/containerd-shim-kata-v2"),
        Some(Runtime::Kata)
    );
    assert_eq!(from_exe_path("/bin/sh"), None);
    assert_eq!(from_comm("runc:[2:INIT]"), Some(Runtime::Runc));
    assert_eq!(from_comm("runc:[0:PARENT]\n"), Some(Runtime::Runc));
    assert_eq!(from_comm("youki:[2:INIT]"), Some(Runtime::Youki));
    assert_eq!(from_comm("crun"), Some(Runtime::Crun));
    assert_eq!(from_comm("nginx"), None);
}

#[test]
fn binaries() {
    // Go's build information as Debian 12's /usr/sbin/runc holds it
    // (runc's Makefile: no module version), and as `go install` writes it.
    let debian = b"\x00\xff Go buildinf:\x08\x02\x00go1.19.8\x00path\tgithub.com/opencontainers/runc\nbuild\t-compiler=gc\nbuild\t-tags=seccomp,urfave_cli_no_docs\n";
    assert_eq!(
        from_binary(debian),
        Some(Identity {
            runtime: Runtime::Runc,
            version: None
        })
    );
    let devel = b"\xff Go buildinf:path\tgithub.com/opencontainers/runc\nmod\tgithub.com/opencontainers/runc\t(devel)\t\nbuild\t-buildmode=pie\n";
    assert_eq!(from_binary(devel).unwrap().version, None);
    let installed = b"\xff Go buildinf:path\tgithub.com/opencontainers/runc\nmod\tgithub.com/opencontainers/runc\tv1.3.3\th1:abc=\n";
    assert_eq!(
        from_binary(installed).unwrap().version,
        Some(Version::new(1, 3, 3))
    );
    // Excerpts of Debian 12's /usr/bin/crun (1.8.1).
    let crun =
        b"tarting\x00[libcrun:%s]\x00exec co\x00%s version %s\n\x00spec: 1.0.0\n\x001.8.1\x00";
    assert_eq!(
        from_binary(crun),
        Some(Identity {
            runtime: Runtime::Crun,
            version: None
        })
    );
    assert_eq!(from_binary(b"\x7fELF nothing to see"), None);
    let other_go = b"\xff Go buildinf:path\tgithub.com/example/tool\n";
    assert_eq!(from_binary(other_go), None);
}

#[test]
fn sandboxes_hide_the_workload() {
    assert!(Runtime::Runc.host_sees_workload());
    assert!(!Runtime::Runsc.host_sees_workload());
    assert!(!Runtime::Kata.host_sees_workload());
    assert_eq!(Runtime::from_name("CRUN"), Some(Runtime::Crun));
    assert_eq!(Runtime::from_name("podman"), None);
}
