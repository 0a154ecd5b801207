//! A file given to `syscensus export --from` (ContainerProfiles, Lists,
//! ContainerRecordings, anything else) and a patch file of an export: read
//! or refused; the export planned from what reads writes only inside its
//! directory.
#![no_main]

use std::{path::PathBuf, sync::OnceLock};

use libfuzzer_sys::fuzz_target;
use syscensus::export::{Filter, PlanOptions, file_entries, parse_patch, plan};
use syscensus_fuzz::assert_contained;

/// A file of this process's own, rewritten for every input.
fn input_file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("syscensus-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        dir.join("input.yaml")
    })
}

fuzz_target!(|data: &[u8]| {
    let file = input_file();
    std::fs::write(file, data).expect("the input file is writable");
    if let Ok(entries) = file_entries(file, &Filter::default()) {
        if let Ok(plan) = plan(entries, None, &PlanOptions { spo: true, ..Default::default() }) {
            for path in plan.files.keys() {
                assert_contained(path.as_ref());
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_patch(text, file);
    }
});
