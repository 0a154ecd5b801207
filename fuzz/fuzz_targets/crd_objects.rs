//! ProfileRecording and ContainerProfile objects as JSON (the API server)
//! or YAML (`kubectl get -o yaml`): read or refused; the agent's selector
//! checks answer, and the path a ContainerProfile installs to stays inside
//! the kubelet's seccomp directory.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use syscensus::{
    daemon::selection::{selects, validate},
    localhost::{self, spec_profile_path},
};
use syscensus_api::{ContainerProfile, ProfileRecording};
use syscensus_fuzz::assert_contained;

fn read<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).ok()
    } else {
        serde_norway::from_str(text).ok()
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(recording) = read::<ProfileRecording>(text) {
        let spec = &recording.spec;
        let _ = validate(spec);
        let labels: BTreeMap<String, String> =
            spec.pod_selector.match_labels.clone().unwrap_or_default();
        for container in spec.containers.iter().map(String::as_str).chain(["app"]) {
            let _ = selects(spec, &labels, container, false);
            let _ = selects(spec, &BTreeMap::new(), container, true);
        }
    }
    if let Some(profile) = read::<ContainerProfile>(text) {
        let namespace = profile.metadata.namespace.clone().unwrap_or_default();
        if let Ok(path) = spec_profile_path(&namespace, &profile.spec) {
            assert_contained(&path);
        }
        let _ = localhost::render(&profile.spec);
        let mut merged = profile.spec.clone();
        localhost::merge(&mut merged, &profile.spec);
    }
});
