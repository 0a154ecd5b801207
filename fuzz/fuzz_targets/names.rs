//! Names from outside (NUL-separated: recording, kind, workload,
//! container): the checks never panic; label values fit 63 characters;
//! object names of valid parts are valid; profile paths stay inside their
//! directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syscensus::localhost::{localhost_profile, profile_path};
use syscensus_api::{
    WorkloadKind, label_value, object_name, validate_dns_label, validate_dns_subdomain,
};
use syscensus_fuzz::assert_contained;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(4, '\0');
    let recording = parts.next().unwrap_or_default();
    let kind_name = parts.next().unwrap_or_default();
    let workload = parts.next().unwrap_or_default();
    let container = parts.next().unwrap_or_default();
    for part in [recording, kind_name, workload, container] {
        let _ = validate_dns_label(part);
        let _ = validate_dns_subdomain(part);
        assert!(label_value(part).len() <= 63);
    }
    let kind = WorkloadKind::from_name(kind_name).unwrap_or(WorkloadKind::Pod);
    if validate_dns_subdomain(recording).is_ok()
        && validate_dns_subdomain(workload).is_ok()
        && validate_dns_label(container).is_ok()
    {
        let name = object_name(recording, kind.as_str(), workload, container);
        assert!(name.len() <= 253, "{name}");
        validate_dns_subdomain(&name).expect("object names are valid");
    }
    if let Ok(path) = profile_path(recording, kind, workload, container) {
        assert_contained(&path);
        let localhost = localhost_profile(recording, kind, workload, container).unwrap();
        assert_contained(localhost.as_ref());
    }
});
