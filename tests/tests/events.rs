//! events/: every folder belongs to a function, and every sample is JSON except the ones named as
//! malformed. Each function crate checks its own samples are accepted or refused as named.

use integration_tests::workspace_root;

#[test]
fn every_sample_event_belongs_to_a_function_and_parses() {
    let root = workspace_root();
    let mut files = 0;
    for folder in std::fs::read_dir(root.join("events")).unwrap() {
        let folder = folder.unwrap().path();
        let function = folder.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            root.join("functions").join(&function).join("Cargo.toml").exists(),
            "events/{function}: no such function"
        );
        for file in std::fs::read_dir(&folder).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.ends_with(".json"), "events/{function}/{name}: samples are .json files");
            let parsed = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&path).unwrap());
            assert_eq!(parsed.is_err(), name.starts_with("bad-malformed"), "events/{function}/{name}");
            files += 1;
        }
    }
    assert!(files >= 3);
}
