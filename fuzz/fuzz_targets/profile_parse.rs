//! Profile text in any format (OCI, Docker, SPO YAML or JSON, several
//! documents): parsed, or refused with a message; what parses survives
//! `to_oci_json`, compiles to a filter that runs, and writes as an SPO
//! object that parses again.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use syscensus::{
    profile::Profile,
    seccomp::{self, SeccompData},
    syscalls::Arch,
};
use syscensus_fuzz::HOST;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Path::new("fuzz.json");
    for select in [None, Some("profile")] {
        let Ok(profile) = Profile::parse_for_host(text, origin, select, &HOST) else {
            continue;
        };
        let again = Profile::parse_for_host(&profile.to_oci_json(), origin, None, &HOST)
            .expect("the OCI form of a parsed profile parses");
        assert_eq!(again, profile, "the OCI form reads back differently");
        if let Ok(program) = seccomp::compile(&profile, Arch::X86_64) {
            for nr in [0, 59, 435, 0x4000_0000, u32::MAX] {
                let data = SeccompData {
                    nr,
                    arch: Arch::X86_64.audit_arch(),
                    ..SeccompData::default()
                };
                seccomp::evaluate(&program, &data).expect("a compiled filter runs");
            }
        }
        if let Ok(yaml) = profile.to_spo_yaml("fuzz", Some("ns")) {
            Profile::parse_for_host(&yaml, origin, Some("fuzz"), &HOST)
                .expect("a written SeccompProfile parses");
        }
    }
});
