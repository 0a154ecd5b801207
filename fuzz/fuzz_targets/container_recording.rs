//! ContainerRecording documents, as the agent keeps them in its state
//! directory and `syscensus export --from` reads them: read or refused;
//! what reads survives `to_json`, and its export path stays inside the
//! export.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syscensus::{
    container_recording::ContainerRecording,
    export::recording_entry,
    localhost::{self, spec_profile_path},
};
use syscensus_fuzz::assert_contained;

fuzz_target!(|data: &[u8]| {
    let Ok(recording) = serde_json::from_slice::<ContainerRecording>(data) else {
        return;
    };
    let again: ContainerRecording =
        serde_json::from_str(&recording.to_json()).expect("to_json reads back");
    assert_eq!(again, recording);
    if let Some(entry) = recording_entry(&recording) {
        if let Ok(path) = spec_profile_path(&entry.namespace, &entry.spec) {
            assert_contained(&path);
        }
        let _ = localhost::render(&entry.spec);
    }
});
