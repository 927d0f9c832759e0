//! Every sample event under events/telegram-notify renders exactly as its golden file says
//! (golden/<event>.txt); `bad-*` samples are refused. UPDATE_GOLDEN=1 rewrites the golden files.

use std::path::Path;

use telegram_notify::event;
use telegram_notify::render::{InsufficientData, render};

fn rendered(event: &serde_json::Value) -> Result<String, String> {
    let incoming = event::parse(event.clone()).map_err(|e| e.to_string())?;
    let parts: Vec<String> = incoming
        .iter()
        .map(|i| {
            let r = render(&i.message, InsufficientData::Silent);
            format!("id: {}\nsilent: {}\n\n{}\n", i.id, r.silent, r.html)
        })
        .collect();
    Ok(parts.join("\n----\n"))
}

#[test]
fn sample_events_render_as_their_golden_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let events = root.join("../../events/telegram-notify");
    let update = std::env::var("UPDATE_GOLDEN").is_ok();
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&events).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let event: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let result = rendered(&event);
        if stem.starts_with("bad-") {
            assert!(result.is_err(), "{stem} should be refused");
            continue;
        }
        let got = result.unwrap_or_else(|e| panic!("{stem}: {e}"));
        let golden = root.join("golden").join(format!("{stem}.txt"));
        if update {
            std::fs::write(&golden, &got).unwrap();
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| panic!("no golden file {}", golden.display()));
        assert_eq!(got, want, "{stem} differs from {}", golden.display());
        checked += 1;
    }
    assert!(checked >= 10);
}
