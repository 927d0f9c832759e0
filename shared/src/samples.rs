//! The sample events every function keeps under `events/<function>/`: each is accepted, or refused
//! when its name starts with `bad-`. Functions' tests read them through here.

use std::path::Path;

/// A sample event: its file name, whether it must be refused, and its text (which need not be JSON).
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub refused: bool,
    pub text: String,
}

/// Every sample of `function`, from a crate at `functions/<function>` (pass `env!("CARGO_MANIFEST_DIR")`).
pub fn samples(manifest_dir: &str, function: &str) -> Vec<Sample> {
    let dir = Path::new(manifest_dir).join("../../events").join(function);
    let mut out: Vec<Sample> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a readable directory entry").path();
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Sample { refused: name.starts_with("bad-"), name, text }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// An invocation's context as Lambda gives it: a request id, the function's ARN and a deadline a
/// minute away (`Context::default()`'s deadline is the epoch, which leaves a handler no time).
pub fn context(function: &str) -> lambda_runtime::Context {
    let deadline = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    let mut context = lambda_runtime::Context::default();
    context.request_id = "8f5e2a8c-0c1d-4a1e-9a55-3f1f0d1e2b3c".to_owned();
    context.invoked_function_arn = format!("arn:aws:lambda:eu-central-1:123456789012:function:openclaw-ops-{function}");
    context.deadline = deadline.duration_since(std::time::UNIX_EPOCH).expect("after the epoch").as_millis() as u64;
    context
}
