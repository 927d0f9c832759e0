//! One emulator per test: testbed/emulator.py (moto server with IAM enforced, a movable clock and a
//! record of authorizations) in a child process on a free loopback port.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::workspace_root;

/// The PATH of the instance the machine plays: the system's, as on the gateway. The scripts drop
/// from root to the state directory's owner, who must find `python3`, `sqlite3` and `curl` there (a
/// venv on a Python under /root would not run for that user), and need no AWS CLI: the functions
/// hand them pre-signed URLs.
pub const INSTANCE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Deserialize)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, Deserialize)]
struct Ready {
    url: String,
    region: String,
    admin: Keys,
}

/// One request the test bed authorized or refused (testbed/iam_bed.py's decision log).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Call {
    pub access_key_id: String,
    /// The API operation as an IAM action (`ec2:CreateSnapshot`).
    pub action: String,
    pub allowed: bool,
    /// Authenticated by a pre-signed URL (query-string SigV4), the signer being the principal.
    #[serde(default)]
    pub presigned: bool,
    #[serde(default)]
    pub principal: Option<String>,
    /// Every authorization AWS makes for the request (implied ones included), with its decision.
    #[serde(default)]
    pub authorizations: Vec<Authorization>,
    /// What the bed could not evaluate (an unknown operator, key or operation): always a denial.
    #[serde(default)]
    pub error: Option<String>,
}

/// One action on one resource, with its request context and the statements that decided it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Authorization {
    pub action: String,
    pub resource: String,
    pub context: serde_json::Map<String, serde_json::Value>,
    pub allowed: bool,
    /// `policy/Sid` of the deciding statements: every matching Allow, or the matching Deny.
    pub statements: Vec<String>,
    pub reason: String,
}

pub struct Emulator {
    pub url: String,
    pub region: String,
    admin: Keys,
    http: reqwest::Client,
    stderr: Arc<Mutex<String>>,
    _child: Child,
}

impl Emulator {
    /// Starts a fresh emulator. The venv comes from `OPENCLAW_TESTBED_PYTHON`, else `.venv/` (made by
    /// testbed/setup.sh, which the test command runs).
    pub async fn start() -> anyhow::Result<Self> {
        let root = workspace_root();
        let python =
            std::env::var("OPENCLAW_TESTBED_PYTHON").map(Into::into).unwrap_or_else(|_| root.join(".venv/bin/python"));
        if !python.exists() {
            bail!("{} not found: run testbed/setup.sh (scripts/test.sh does) first", python.display());
        }
        let mut child = Command::new(&python)
            .arg(root.join("testbed/emulator.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", python.display()))?;

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("piped");
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock().await.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });

        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        let ready: Ready = match first {
            Ok(Ok(Some(line))) => serde_json::from_str(&line).with_context(|| format!("emulator said {line:?}"))?,
            other => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                bail!("emulator did not start ({other:?}); its stderr:\n{}", stderr.lock().await);
            }
        };
        Ok(Emulator {
            url: ready.url,
            region: ready.region,
            admin: ready.admin,
            http: reqwest::Client::new(),
            stderr,
            _child: child,
        })
    }

    /// SDK configuration for the harness itself, signed with the given keys.
    pub async fn sdk_config(&self, keys: &Keys) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(openclaw_ops_shared::http::client(
                openclaw_ops_shared::tls::shared().expect("Mozilla's roots build a TLS configuration"),
            ))
            .endpoint_url(&self.url)
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::from_keys(&keys.access_key_id, &keys.secret_access_key, None))
            .load()
            .await
    }

    /// The administrator's keys (for what stands in for an instance role in script tests).
    pub fn admin_keys(&self) -> Keys {
        self.admin.clone()
    }

    /// The all-powerful test bed administrator, for seeding and inspecting the account.
    pub async fn admin(&self) -> SdkConfig {
        self.sdk_config(&self.admin).await
    }

    /// Environment that points a function's process at the emulator as the given principal,
    /// through the SDK's standard variables only.
    pub fn function_env(&self, keys: &Keys) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.url.clone()),
            ("AWS_REGION".into(), self.region.clone()),
            ("AWS_DEFAULT_REGION".into(), self.region.clone()),
            ("AWS_ACCESS_KEY_ID".into(), keys.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), keys.secret_access_key.clone()),
        ]
    }

    /// Moves the emulator's clock: timestamps it writes from now on start at `now` (it keeps ticking).
    pub async fn set_clock(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/_testbed/clock", self.url))
            .body(serde_json::json!({ "now": now.to_rfc3339() }).to_string())
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("moving the clock: {} {}", response.status(), response.text().await?);
        }
        Ok(())
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
        let response = self.http.post(format!("{}{path}", self.url)).body(body.to_string()).send().await?;
        if !response.status().is_success() {
            bail!("POST {path}: {} {}", response.status(), response.text().await?);
        }
        Ok(())
    }

    /// Queues `GetCostAndUsage` answers (moto's own endpoint; one per distinct request).
    pub async fn queue_cost_and_usage(&self, results: Vec<serde_json::Value>) -> anyhow::Result<()> {
        self.post("/moto-api/static/ce/cost-and-usage-results", serde_json::json!({ "results": results })).await
    }

    /// Queues `GetCostForecast` answers (`{"result": ...}` or `{"error": {"code", "message"}}`).
    pub async fn queue_cost_forecasts(&self, forecasts: Vec<serde_json::Value>) -> anyhow::Result<()> {
        self.post("/_testbed/ce/forecasts", serde_json::json!({ "forecasts": forecasts })).await
    }

    /// Makes the next `GetCostAndUsage` calls fail with these errors.
    pub async fn queue_cost_failures(&self, failures: Vec<serde_json::Value>) -> anyhow::Result<()> {
        self.post("/_testbed/ce/failures", serde_json::json!({ "failures": failures })).await
    }

    /// Lets this machine play `instance_id` for SSM Run Command, its scripts getting `env`, with
    /// [`INSTANCE_PATH`] unless `env` sets a PATH.
    pub async fn register_instance(
        &self,
        instance_id: &str,
        mut env: serde_json::Map<String, serde_json::Value>,
    ) -> anyhow::Result<()> {
        env.entry("PATH").or_insert(serde_json::Value::String(INSTANCE_PATH.to_owned()));
        self.post("/_testbed/ssm/instances", serde_json::json!({"instance_id": instance_id, "env": env})).await
    }

    /// Runs a shell script through SSM Run Command on `instance` (this machine, as root, as SSM
    /// runs it) and waits for it: stdout and stderr, or the final status and stderr.
    pub async fn run_shell(&self, instance: &str, script: String) -> Result<(String, String), (String, String)> {
        let ssm = aws_sdk_ssm::Client::new(&self.admin().await);
        let sent = ssm
            .send_command()
            .instance_ids(instance)
            .document_name("AWS-RunShellScript")
            .parameters("commands", vec![script])
            .parameters("executionTimeout", vec!["120".to_owned()])
            .send()
            .await
            .expect("SendCommand");
        let id = sent.command.and_then(|c| c.command_id).expect("a command id");
        for _ in 0..1500 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let inv = match ssm.get_command_invocation().command_id(&id).instance_id(instance).send().await {
                Ok(inv) => inv,
                // As on AWS, the invocation is not there for a moment after the send.
                Err(e) if e.as_service_error().is_some_and(|e| e.is_invocation_does_not_exist()) => continue,
                Err(e) => panic!("GetCommandInvocation: {e:?}"),
            };
            let status = inv.status().map(|s| s.as_str().to_owned()).unwrap_or_default();
            if status == "InProgress" || status == "Pending" {
                continue;
            }
            let err = inv.standard_error_content().unwrap_or_default().to_owned();
            if status != "Success" {
                return Err((status, err));
            }
            return Ok((inv.standard_output_content().unwrap_or_default().to_owned(), err));
        }
        panic!("the command did not finish");
    }

    /// Snapshots made straight in the emulator's EC2 (no API round trip each): for benchmarks that
    /// need thousands. Each is `{"volume_id", "tags": {...}, "start_time": RFC3339}`.
    pub async fn seed_snapshots(&self, snapshots: Vec<serde_json::Value>) -> anyhow::Result<()> {
        self.post("/_testbed/ec2/snapshots", serde_json::json!({ "snapshots": snapshots })).await
    }

    /// Sets a snapshot's state (`pending`, `completed`, `error`) in `region`: moto completes each
    /// snapshot at once (testbed/fake_ebs_copy.py).
    pub async fn set_snapshot_state(&self, region: &str, snapshot_id: &str, state: &str) -> anyhow::Result<()> {
        self.post(
            "/_testbed/ec2/snapshot-state",
            serde_json::json!({"region": region, "snapshot_id": snapshot_id, "state": state}),
        )
        .await
    }

    /// The next `parties * rounds` `CopySnapshot` requests meet in groups of `parties` before copying
    /// (testbed/fake_ebs_copy.py): concurrent runs then both copy.
    pub async fn copy_barrier(&self, parties: u32, rounds: u32) -> anyhow::Result<()> {
        self.post("/_testbed/ec2/copy-barrier", serde_json::json!({"parties": parties, "rounds": rounds})).await
    }

    /// The administrator's SDK configuration in another region of the emulator.
    pub async fn admin_in(&self, region: &str) -> SdkConfig {
        self.admin().await.into_builder().region(Region::new(region.to_owned())).build()
    }

    /// EC2 reclaiming a Spot instance: `action` is `terminate` or `stop`; the instance gets EC2's
    /// Spot state reason and goes in the test bed's default time (30 s of bed time; see
    /// [`Emulator::spot_interruption_taking`]). The test then delivers the EventBridge event itself.
    pub async fn spot_interruption(&self, instance_id: &str, action: &str) -> anyhow::Result<()> {
        self.post("/_testbed/ec2/spot-interruption", serde_json::json!({"instance_id": instance_id, "action": action}))
            .await
    }

    /// Spot capacity runs out: the next `refuse` Spot launches answer `InsufficientInstanceCapacity`;
    /// with `gather` > 1 the next that many `RunInstances` calls wait for each other (10 s at most)
    /// before any is decided, so concurrent deliveries really race (testbed/fake_ec2.py).
    pub async fn spot_capacity(&self, refuse: u32, gather: u32) -> anyhow::Result<()> {
        self.post("/_testbed/ec2/spot-capacity", serde_json::json!({"refuse": refuse, "gather": gather})).await
    }

    /// Evaluates requests (`{"action", "resource", "context"}`) under a policy document the way the
    /// bed evaluates live requests; answers `{"allowed", "statements", "reason"}` for each.
    pub async fn simulate(
        &self,
        policy: &serde_json::Value,
        requests: &[serde_json::Value],
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        let body = serde_json::json!({"policy": policy, "requests": requests});
        let response =
            self.http.post(format!("{}/_testbed/iam/simulate", self.url)).body(body.to_string()).send().await?;
        Ok(response.error_for_status()?.json().await?)
    }

    /// EC2 reclaiming a Spot instance that takes `seconds` of bed time to go: `shutting-down` (or
    /// `stopping`) with its volumes attached until then, `terminated` with them released (or
    /// `stopped`) after.
    pub async fn spot_interruption_taking(&self, instance_id: &str, action: &str, seconds: f64) -> anyhow::Result<()> {
        self.post(
            "/_testbed/ec2/spot-interruption",
            serde_json::json!({"instance_id": instance_id, "action": action, "seconds": seconds}),
        )
        .await
    }

    /// Bed time runs `scale` times faster than real time (the SSM, load balancer and Spot timings
    /// of the test bed; not the timestamps moto writes).
    pub async fn set_time_scale(&self, scale: f64) -> anyhow::Result<()> {
        self.post("/_testbed/time-scale", serde_json::json!({ "scale": scale })).await
    }

    /// How long, in bed time, an SSM invocation is not there after the send (`InvocationDoesNotExist`)
    /// and how long it stays `Pending` before its script starts.
    pub async fn set_ssm_timings(&self, invisible_seconds: f64, delivery_seconds: f64) -> anyhow::Result<()> {
        self.post(
            "/_testbed/ssm/settings",
            serde_json::json!({"invisible_seconds": invisible_seconds, "delivery_seconds": delivery_seconds}),
        )
        .await
    }

    /// How a load balancer target of `instance_id` (`*`: every instance without its own) fares:
    /// `initial` for the target group's HealthyThreshold x Interval plus `boot_seconds` after its
    /// registration, then `state` (`healthy` or `unhealthy`).
    pub async fn set_target_health(&self, instance_id: &str, boot_seconds: f64, state: &str) -> anyhow::Result<()> {
        self.post(
            "/_testbed/elbv2/target-health",
            serde_json::json!({"instance_id": instance_id, "boot_seconds": boot_seconds, "state": state}),
        )
        .await
    }

    /// The EventBridge Scheduler schedules in `group` (GetSchedule's answers, by name), as the
    /// emulator keeps them: it never runs one (testbed/fake_scheduler.py).
    pub async fn schedules(&self, group: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let response = self
            .http
            .post(format!("{}/_testbed/scheduler/schedules", self.url))
            .body(serde_json::json!({"group": group, "region": self.region}).to_string())
            .send()
            .await?
            .error_for_status()?;
        let body: serde_json::Value = response.json().await?;
        Ok(body["schedules"].as_array().cloned().unwrap_or_default())
    }

    /// Every authorization evaluated so far, in order.
    pub async fn calls(&self) -> anyhow::Result<Vec<Call>> {
        Ok(self.http.get(format!("{}/_testbed/calls", self.url)).send().await?.error_for_status()?.json().await?)
    }

    /// The calls one principal made.
    pub async fn calls_by(&self, keys: &Keys) -> anyhow::Result<Vec<Call>> {
        Ok(self.calls().await?.into_iter().filter(|c| c.access_key_id == keys.access_key_id).collect())
    }

    pub async fn stderr(&self) -> String {
        self.stderr.lock().await.clone()
    }
}
