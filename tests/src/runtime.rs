//! A local Lambda Runtime API: runs a function's real binary as Lambda would (a process that polls
//! `/runtime/invocation/next`), so tests go through `main.rs`, the init phase and the environment.
//!
//! Each invocation gets the deadline Lambda gives it: the function's `Timeout` in template.yaml
//! (`Lambda-Runtime-Deadline-Ms`), and the function is stopped there as Lambda stops it: an
//! invocation still running at its deadline ends `Sandbox.Timedout` ("Task timed out after N
//! seconds") and its process is killed. A test may run a function on a time scale
//! ([`Function::start_scaled`]), the deadline then coming `scale` times sooner, as the test bed's
//! durations do with its own time scale: a 300-second function meets a slow health check in
//! seconds.
//!
//! A function may also run on a scenario's clock ([`Function::start_at`]): its process is started
//! under libfaketime (LD_PRELOAD; the function's code does not know), reading its offset from real
//! time from a file the test moves ([`Function::set_clock`]), and the invocation deadline Lambda
//! gives it is on that clock too, as Lambda's and the function's clocks agree in AWS. A scheduled
//! event for 2026-03-01 is then genuine for a function that checks its time against its clock.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};

use crate::workspace_root;

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    Error { error_type: String, error_message: String },
}

impl Outcome {
    pub fn response(self) -> Value {
        match self {
            Outcome::Response(v) => v,
            Outcome::Error { error_type, error_message } => panic!("invocation failed: {error_type}: {error_message}"),
        }
    }

    pub fn error(self) -> (String, String) {
        match self {
            Outcome::Error { error_type, error_message } => (error_type, error_message),
            Outcome::Response(v) => panic!("invocation succeeded, expected an error: {v}"),
        }
    }
}

/// An invocation waiting for `/next`: its id, payload and deadline (ms since the epoch).
type Pending = (String, Bytes, i64);

struct Shared {
    queue: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    waiters: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<String>>,
    /// When the process first asked for an invocation: the end of its init phase.
    first_next: OnceLock<std::time::Instant>,
}

/// A function's bootstrap process with its own Runtime API server.
pub struct Function {
    name: String,
    submit: mpsc::Sender<Pending>,
    shared: Arc<Shared>,
    exited: watch::Receiver<Option<String>>,
    output: Arc<Mutex<String>>,
    next_id: Mutex<u64>,
    spawned: std::time::Instant,
    pid: Option<u32>,
    /// The function's `Timeout` in template.yaml.
    timeout: Duration,
    /// What one invocation gets: `timeout` divided by the test's time scale.
    deadline: Duration,
    kill: Mutex<Option<oneshot::Sender<()>>>,
    /// Set by [`Function::start_at`]: the process's clock, as an offset from real time.
    clock: Option<Clock>,
    _server: tokio::task::JoinHandle<()>,
}

/// The faked clock of a function's process: libfaketime reads `file` (`+N`/`-N` seconds from real
/// time) at every clock read.
struct Clock {
    file: std::path::PathBuf,
    offset_secs: std::sync::atomic::AtomicI64,
}

impl Clock {
    fn new(now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let file = std::env::temp_dir().join(format!("openclaw-clock-{}-{n}", std::process::id()));
        let clock = Clock { file, offset_secs: std::sync::atomic::AtomicI64::new(0) };
        clock.set(now)?;
        Ok(clock)
    }

    fn set(&self, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()> {
        let offset = (now - chrono::Utc::now()).num_seconds();
        std::fs::write(&self.file, format!("{offset:+}\n"))
            .with_context(|| format!("writing {}", self.file.display()))?;
        self.offset_secs.store(offset, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Where Debian's `libfaketime` package puts its thread-safe library (`OPENCLAW_LIBFAKETIME` overrides).
fn libfaketime() -> anyhow::Result<std::path::PathBuf> {
    if let Ok(path) = std::env::var("OPENCLAW_LIBFAKETIME") {
        return Ok(path.into());
    }
    let candidates = ["x86_64-linux-gnu", "aarch64-linux-gnu"]
        .iter()
        .map(|triple| std::path::PathBuf::from(format!("/usr/lib/{triple}/faketime/libfaketimeMT.so.1")));
    candidates.into_iter().find(|p| p.exists()).context(
        "libfaketime is not installed (apt-get install libfaketime; testbed/setup.sh installs it): a function \
         started on a scenario's clock needs it",
    )
}

/// A function's `Timeout` in template.yaml (found by its binary's name, as `cargo lambda` builds
/// it), else the `Globals`' one, else Lambda's default of 3 seconds.
pub fn template_timeout(binary: &str) -> anyhow::Result<Duration> {
    use serde_norway::Value;
    let template = crate::template::Template::load()?;
    let seconds = |v: Option<&Value>| v.and_then(Value::as_u64);
    let resources = template.doc.get("Resources").and_then(Value::as_mapping).context("template has no Resources")?;
    let function = resources.values().find(|r| {
        r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function")
            && r.get("Metadata")
                .and_then(|m| m.get("BuildProperties"))
                .and_then(|b| b.get("Binary"))
                .and_then(Value::as_str)
                == Some(binary)
    });
    let Some(function) = function else { bail!("template.yaml has no function whose binary is {binary}") };
    let own = seconds(function.get("Properties").and_then(|p| p.get("Timeout")));
    let global = seconds(template.doc.get("Globals").and_then(|g| g.get("Function")).and_then(|f| f.get("Timeout")));
    Ok(Duration::from_secs(own.or(global).unwrap_or(3)))
}

/// Builds the functions' binaries (once per test process; a no-op when they are current), so a test
/// never runs a stale bootstrap. The whole workspace with every target, as the test command builds
/// it: a single package (`-p`), or `--bins` alone (without the dev-dependencies' features), would
/// resolve other dependency features and rebuild the SDKs a second time.
///
/// `OPENCLAW_FUNCTION_BIN_DIR` points at other binaries instead (a release build, for measurements);
/// nothing is built then.
pub fn binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    if let Ok(dir) = std::env::var("OPENCLAW_FUNCTION_BIN_DIR") {
        return Ok(std::path::PathBuf::from(dir).join(name));
    }
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "--workspace", "--all-targets"])
            .current_dir(workspace_root())
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() { Ok(()) } else { Err(format!("cargo build --workspace --all-targets failed: {status}")) }
    });
    if let Err(e) = built {
        bail!("{e}");
    }
    let target = std::env::var("CARGO_TARGET_DIR").map(Into::into).unwrap_or_else(|_| workspace_root().join("target"));
    Ok(target.join("debug").join(name))
}

/// The environment Lambda gives a function's process, with its Runtime API at `runtime_api`.
pub fn lambda_env(name: &str, runtime_api: &str) -> [(&'static str, String); 7] {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_owned()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
    ]
}

impl Function {
    /// Starts `name`'s bootstrap with Lambda's environment plus `env`; each invocation gets the
    /// function's `Timeout` from template.yaml.
    pub async fn start(name: &str, env: &[(String, String)]) -> anyhow::Result<Self> {
        Self::start_scaled(name, env, 1.0).await
    }

    /// As [`Function::start`], with the process's clock (and its invocations' deadlines) at `now`;
    /// it keeps ticking, and [`Function::set_clock`] moves it.
    pub async fn start_at(
        name: &str,
        env: &[(String, String)],
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Self> {
        Self::spawn(name, env, 1.0, Some(Clock::new(now)?)).await
    }

    /// [`Function::start_scaled`] on a clock, as [`Function::start_at`].
    pub async fn start_scaled_at(
        name: &str,
        env: &[(String, String)],
        time_scale: f64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Self> {
        Self::spawn(name, env, time_scale, Some(Clock::new(now)?)).await
    }

    /// Moves the clock of a function started with [`Function::start_at`].
    pub fn set_clock(&self, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()> {
        self.clock.as_ref().context("set_clock: the function was not started on a clock (Function::start_at)")?.set(now)
    }

    /// As [`Function::start`], with the deadline `time_scale` times sooner (a 300-second `Timeout`
    /// at scale 30 gives each invocation 10 seconds).
    pub async fn start_scaled(name: &str, env: &[(String, String)], time_scale: f64) -> anyhow::Result<Self> {
        Self::spawn(name, env, time_scale, None).await
    }

    async fn spawn(
        name: &str,
        env: &[(String, String)],
        time_scale: f64,
        clock: Option<Clock>,
    ) -> anyhow::Result<Self> {
        if time_scale.is_nan() || time_scale <= 0.0 {
            bail!("the time scale must be positive, not {time_scale}");
        }
        let timeout = template_timeout(name)?;
        let deadline = timeout.div_f64(time_scale);
        let path = binary(name)?;
        let (submit, queue) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(queue),
            waiters: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            first_next: OnceLock::new(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("runtime API server");
        });

        let mut command = Command::new(&path);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(lambda_env(name, &addr.to_string()))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(clock) = &clock {
            command
                .env("LD_PRELOAD", libfaketime()?)
                .env("FAKETIME_TIMESTAMP_FILE", &clock.file)
                // Read at every clock read, so a moved clock holds from the next invocation on.
                .env("FAKETIME_NO_CACHE", "1")
                // Timers and Instants stay real: only the wall clock is the scenario's.
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let spawned = std::time::Instant::now();
        let mut child = command.spawn().with_context(|| format!("starting {}", path.display()))?;
        let pid = child.id();

        let output = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().expect("piped"), output.clone());
        collect(child.stderr.take().expect("piped"), output.clone());
        let (exit_tx, exited) = watch::channel(None);
        let (kill, killed) = oneshot::channel();
        tokio::spawn(watch_exit(child, exit_tx, killed));

        Ok(Function {
            name: name.to_owned(),
            submit,
            shared,
            exited,
            output,
            next_id: Mutex::new(0),
            spawned,
            pid,
            timeout,
            deadline,
            kill: Mutex::new(Some(kill)),
            clock,
            _server: server,
        })
    }

    /// Invokes the function with raw bytes (which need not be valid JSON) and waits for its answer.
    pub async fn invoke_raw(&self, payload: impl Into<Bytes>) -> anyhow::Result<Outcome> {
        self.invoke_within(payload, Duration::from_secs(120)).await
    }

    /// The function's `Timeout` in template.yaml.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// What each invocation gets: the `Timeout`, on the test's time scale.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Invokes and waits up to `limit` for the test (a benchmark's long run), and up to the
    /// invocation's deadline for the function: past it the invocation ends `Sandbox.Timedout` and
    /// the process is killed, as Lambda does.
    pub async fn invoke_within(&self, payload: impl Into<Bytes>, limit: Duration) -> anyhow::Result<Outcome> {
        let id = {
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            format!("req-{}-{n}", self.name)
        };
        let (tx, rx) = oneshot::channel();
        self.shared.waiters.lock().unwrap().insert(id.clone(), tx);
        let offset_ms =
            self.clock.as_ref().map_or(0, |c| c.offset_secs.load(std::sync::atomic::Ordering::SeqCst) * 1000);
        let deadline = chrono::Utc::now().timestamp_millis() + offset_ms + self.deadline.as_millis() as i64;
        self.submit.send((id, payload.into(), deadline)).await.context("runtime queue closed")?;
        let mut exited = self.exited.clone();
        // A moment past the deadline for the answer on its way (Lambda's own check is not exact either).
        let timed_out = tokio::time::sleep(self.deadline + Duration::from_millis(500));
        tokio::select! {
            outcome = rx => Ok(outcome.context("invocation dropped")?),
            _ = timed_out => {
                if let Some(kill) = self.kill.lock().unwrap().take() {
                    let _ = kill.send(());
                }
                Ok(Outcome::Error {
                    error_type: "Sandbox.Timedout".to_owned(),
                    error_message: format!("Task timed out after {:.2} seconds", self.deadline.as_secs_f64()),
                })
            }
            _ = exited.wait_for(Option::is_some) => {
                let init = self.shared.init_error.lock().unwrap().clone();
                bail!("{} exited ({:?}); init error: {init:?}; output:\n{}", self.name, *self.exited.borrow(), self.output())
            }
            _ = tokio::time::sleep(limit) => bail!("{} did not answer within {limit:?}; output:\n{}", self.name, self.output()),
        }
    }

    pub async fn invoke(&self, payload: &Value) -> anyhow::Result<Outcome> {
        self.invoke_raw(payload.to_string()).await
    }

    /// When the process was spawned (for cold-start measurements).
    pub fn spawned(&self) -> std::time::Instant {
        self.spawned
    }

    /// Spawn → the first `/next`: the init phase (clients built), once it has happened.
    pub fn init_time(&self) -> Option<Duration> {
        self.shared.first_next.get().map(|t| t.duration_since(self.spawned))
    }

    /// The process's peak resident set so far (Linux `VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The output once what the function wrote before answering has been read from its pipe: the
    /// answer can arrive before the reader has caught up (a busy machine), and a check of the log
    /// line or the EMF metrics must not see an output cut short. Waits until nothing new comes for
    /// 50 ms (at most 2 s).
    pub async fn settled_output(&self) -> String {
        let until = std::time::Instant::now() + Duration::from_secs(2);
        let mut seen = self.output.lock().unwrap().len();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.output.lock().unwrap().len();
            if now == seen || std::time::Instant::now() > until {
                return self.output();
            }
            seen = now;
        }
    }

    /// Waits for the process to exit (an init failure) and answers its init error.
    pub async fn init_failure(&self) -> anyhow::Result<String> {
        let mut exited = self.exited.clone();
        tokio::time::timeout(Duration::from_secs(60), exited.wait_for(Option::is_some))
            .await
            .context("still running")??;
        Ok(self.shared.init_error.lock().unwrap().clone().unwrap_or_else(|| self.output()))
    }
}

fn collect(mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static, sink: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

async fn watch_exit(mut child: Child, tx: watch::Sender<Option<String>>, killed: oneshot::Receiver<()>) {
    let status = tokio::select! {
        status = child.wait() => status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
        Ok(()) = killed => {
            let _ = child.kill().await;
            "killed at the invocation's deadline".to_owned()
        }
    };
    let _ = tx.send(Some(status));
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    shared.first_next.get_or_init(std::time::Instant::now);
    let Some((id, payload, deadline)) = shared.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let mut headers = HeaderMap::new();
    headers.insert("Lambda-Runtime-Aws-Request-Id", HeaderValue::from_str(&id).expect("ascii id"));
    headers.insert("Lambda-Runtime-Deadline-Ms", HeaderValue::from(deadline));
    headers.insert(
        "Lambda-Runtime-Invoked-Function-Arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:local"),
    );
    headers.insert("Lambda-Runtime-Trace-Id", HeaderValue::from_static("Root=1-00000000-000000000000000000000000"));
    headers.insert("Content-Type", HeaderValue::from_static("application/json"));
    (headers, payload).into_response()
}

async fn respond(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let outcome = match serde_json::from_slice(&body) {
        Ok(v) => Outcome::Response(v),
        Err(_) => Outcome::Response(Value::String(String::from_utf8_lossy(&body).into_owned())),
    };
    deliver(&shared, &id, outcome)
}

async fn fail(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let outcome = Outcome::Error {
        error_type: v["errorType"].as_str().unwrap_or_default().to_owned(),
        error_message: v["errorMessage"].as_str().unwrap_or_default().to_owned(),
    };
    deliver(&shared, &id, outcome)
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}

fn deliver(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared.waiters.lock().unwrap().remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}
