//! cgroup paths below the kubelet's roots: classified without a panic;
//! container ids are 64 hex digits and Pod UIDs canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syscensus::daemon::identity::classify;

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Some(found) = classify(path) else {
        return;
    };
    if let Some(id) = found.container_id() {
        assert!(id.len() == 64 && is_lower_hex(id), "container id {id:?}");
        assert!(found.pod_uid().is_some());
    }
    if let Some(uid) = found.pod_uid() {
        let groups: Vec<&str> = uid.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12], "pod uid {uid:?}");
        assert!(groups.iter().all(|g| is_lower_hex(g)), "pod uid {uid:?}");
    }
});
