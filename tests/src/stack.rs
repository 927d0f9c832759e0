//! template.yaml's intrinsics resolved against a test's own account, as CloudFormation would resolve
//! them on deploy: parameters (the template's defaults unless a test sets one), pseudo parameters,
//! conditions, `!Ref`, `!GetAtt`, `!Sub` (both forms), `!If`, `!Join`, `!Select`, `!Split`, `!Equals`,
//! `!Not`, `!And`, `!Or`. A reference the test did not provide is an error that names it, so a
//! policy can never be resolved to something looser than written.

use std::collections::BTreeMap;

use anyhow::{Context, anyhow, bail};
use serde_json::json;
use serde_norway::Value;
use serde_norway::value::TaggedValue;

use crate::emulator::Emulator;
use crate::template::Template;

pub const ACCOUNT: &str = "123456789012";
pub const STACK_NAME: &str = "openclaw-ops";
/// The name of spot-recovery's schedule group in the tests' stack ([`Stack::with_spot_follow_up`]).
pub const SPOT_FOLLOW_UP_GROUP: &str = "openclaw-ops-spot-follow-up";

/// What the tests' "deployed stack" resolves to.
#[derive(Debug, Clone)]
pub struct Stack {
    template: Template,
    params: BTreeMap<String, String>,
    /// `!Ref` of resources.
    refs: BTreeMap<String, String>,
    /// `!GetAtt X.Y` as "X.Y".
    attrs: BTreeMap<String, String>,
    region: String,
}

impl Stack {
    /// template.yaml with its parameters at their defaults, in the emulator's region, and the suite's
    /// KMS key (`OpsKey`) made for real in the emulator.
    pub async fn new(emulator: &Emulator) -> anyhow::Result<Self> {
        let kms = aws_sdk_kms::Client::new(&emulator.admin().await);
        let key = kms.create_key().description("openclaw-ops (test)").send().await.context("CreateKey")?;
        let key = key.key_metadata.context("no key metadata")?;
        Ok(Self::of(Template::load()?, &emulator.region)?.resource(
            "OpsKey",
            key.key_id(),
            &[("Arn", key.arn().context("key arn")?)],
        ))
    }

    /// A template's stack without any resource (for templates and tests without an emulator).
    pub fn of(template: Template, region: &str) -> anyhow::Result<Self> {
        let mut params = BTreeMap::new();
        if let Some(Value::Mapping(declared)) = template.doc.get("Parameters") {
            for (name, spec) in declared {
                let name = name.as_str().context("parameter name")?;
                if let Some(default) = spec.get("Default") {
                    params.insert(name.to_owned(), scalar(default)?);
                }
            }
        }
        Ok(Stack { template, params, refs: BTreeMap::new(), attrs: BTreeMap::new(), region: region.to_owned() })
    }

    pub fn template(&self) -> &Template {
        &self.template
    }

    /// Sets a template parameter, as `--parameter-overrides` would.
    pub fn param(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.insert(name.to_owned(), value.into());
        self
    }

    /// A resource the test made in the emulator: its `!Ref` value and its `!GetAtt` attributes.
    pub fn resource(mut self, logical_id: &str, reference: impl Into<String>, attrs: &[(&str, &str)]) -> Self {
        self.refs.insert(logical_id.to_owned(), reference.into());
        for (name, value) in attrs {
            self.attrs.insert(format!("{logical_id}.{name}"), (*value).to_owned());
        }
        self
    }

    /// spot-recovery's follow-up schedules, made in the emulator as the template makes them: the
    /// schedule group (`SpotFollowUpScheduleGroup`, `!Ref` its name) and the role Scheduler assumes
    /// to invoke the function (`SpotFollowUpSchedulerRole`, `Arn`).
    pub async fn with_spot_follow_up(self, emulator: &Emulator) -> anyhow::Result<Self> {
        let admin = emulator.admin().await;
        let group = SPOT_FOLLOW_UP_GROUP;
        aws_sdk_scheduler::Client::new(&admin)
            .create_schedule_group()
            .name(group)
            .send()
            .await
            .context("CreateScheduleGroup")?;
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}]});
        let role = aws_sdk_iam::Client::new(&admin)
            .create_role()
            .role_name("openclaw-ops-spot-follow-up")
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .context("CreateRole")?
            .role
            .context("no role")?;
        Ok(self.resource("SpotFollowUpScheduleGroup", group, &[]).resource(
            "SpotFollowUpSchedulerRole",
            role.role_name(),
            &[("Arn", role.arn())],
        ))
    }

    /// An SNS topic (its `!Ref` is its ARN).
    pub fn topic(self, logical_id: &str, arn: &str) -> Self {
        self.resource(logical_id, arn, &[])
    }

    /// An S3 bucket (`!Ref` its name, `Arn`).
    pub fn bucket(self, logical_id: &str, name: &str) -> Self {
        let arn = format!("arn:aws:s3:::{name}");
        self.resource(logical_id, name, &[("Arn", &arn)])
    }

    /// An SQS queue (`!Ref` its URL, `Arn`, `QueueName`).
    pub fn queue(self, logical_id: &str, url: &str) -> Self {
        let name = url.rsplit('/').next().unwrap_or_default().to_owned();
        let arn = format!("arn:aws:sqs:{}:{ACCOUNT}:{name}", self.region);
        self.resource(logical_id, url, &[("Arn", &arn), ("QueueName", &name)])
    }

    /// A `!GetAtt` value the test provided ("OpsKey.Arn").
    pub fn attr(&self, path: &str) -> Option<&str> {
        self.attrs.get(path).map(String::as_str)
    }

    /// The value of a parameter (after overrides).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// Evaluates a named condition of the template.
    pub fn condition(&self, name: &str) -> anyhow::Result<bool> {
        let expr = self
            .template
            .doc
            .get("Conditions")
            .and_then(|c| c.get(name))
            .ok_or_else(|| anyhow!("no condition {name} in the template"))?;
        self.truth(expr)
    }

    /// Resolves a template value to JSON, as CloudFormation would hand it to IAM.
    pub fn resolve(&self, value: &Value) -> anyhow::Result<serde_json::Value> {
        Ok(match value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => json!(b),
            Value::Number(n) => serde_json::to_value(n)?,
            Value::String(s) => json!(s),
            Value::Sequence(items) => {
                let mut out = Vec::new();
                for item in items {
                    if self.is_no_value(item) {
                        continue;
                    }
                    out.push(self.resolve(item)?);
                }
                serde_json::Value::Array(out)
            }
            Value::Mapping(map) => {
                if map.len() == 1 {
                    let (k, v) = map.iter().next().expect("one entry");
                    if let Some(name) = k.as_str().filter(|n| n.starts_with("Fn::") || *n == "Ref" || *n == "Condition")
                    {
                        return self.intrinsic(name, v);
                    }
                }
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    out.insert(k.as_str().context("mapping key")?.to_owned(), self.resolve(v)?);
                }
                serde_json::Value::Object(out)
            }
            Value::Tagged(tagged) => {
                let TaggedValue { tag, value } = tagged.as_ref();
                let name = tag.to_string();
                let name = name.trim_start_matches('!');
                let long = if name == "Ref" || name == "Condition" { name.to_owned() } else { format!("Fn::{name}") };
                self.intrinsic(&long, value)?
            }
        })
    }

    fn is_no_value(&self, value: &Value) -> bool {
        match self.resolve(value) {
            Ok(serde_json::Value::String(s)) => s == NO_VALUE,
            _ => false,
        }
    }

    fn intrinsic(&self, name: &str, arg: &Value) -> anyhow::Result<serde_json::Value> {
        match name {
            "Ref" => Ok(json!(self.reference(arg.as_str().context("!Ref takes a name")?)?)),
            "Fn::GetAtt" => {
                let path = match arg {
                    Value::String(s) => s.clone(),
                    Value::Sequence(parts) => {
                        parts.iter().map(|p| p.as_str().unwrap_or_default()).collect::<Vec<_>>().join(".")
                    }
                    other => bail!("!GetAtt {other:?}"),
                };
                self.attrs.get(&path).map(|v| json!(v)).ok_or_else(|| anyhow!("the test provides no !GetAtt {path}"))
            }
            "Fn::Sub" => {
                let (text, vars) = match arg {
                    Value::String(s) => (s.clone(), BTreeMap::new()),
                    Value::Sequence(parts) if parts.len() == 2 => {
                        let text = parts[0].as_str().context("!Sub text")?.to_owned();
                        let mut vars = BTreeMap::new();
                        for (k, v) in parts[1].as_mapping().context("!Sub variables")? {
                            let resolved = self.resolve(v)?;
                            let value = resolved.as_str().map(str::to_owned).unwrap_or_else(|| resolved.to_string());
                            vars.insert(k.as_str().context("!Sub variable name")?.to_owned(), value);
                        }
                        (text, vars)
                    }
                    other => bail!("!Sub {other:?}"),
                };
                Ok(json!(self.substitute(&text, &vars)?))
            }
            "Fn::If" => {
                let parts = arg.as_sequence().filter(|p| p.len() == 3).context("!If takes [condition, then, else]")?;
                let chosen = if self.condition(parts[0].as_str().context("!If condition name")?)? {
                    &parts[1]
                } else {
                    &parts[2]
                };
                self.resolve(chosen)
            }
            "Fn::Join" => {
                let parts = arg.as_sequence().filter(|p| p.len() == 2).context("!Join takes [separator, list]")?;
                let separator = parts[0].as_str().unwrap_or_default();
                let items = self.resolve(&parts[1])?;
                let items = items.as_array().context("!Join list")?;
                Ok(json!(
                    items.iter().map(|i| i.as_str().unwrap_or_default().to_owned()).collect::<Vec<_>>().join(separator)
                ))
            }
            "Fn::Select" => {
                let parts = arg.as_sequence().filter(|p| p.len() == 2).context("!Select takes [index, list]")?;
                let index: usize = scalar(&parts[0])?.parse()?;
                let list = self.resolve(&parts[1])?;
                list.get(index).cloned().ok_or_else(|| anyhow!("!Select index {index} out of range"))
            }
            "Fn::Split" => {
                let parts = arg.as_sequence().filter(|p| p.len() == 2).context("!Split takes [separator, text]")?;
                let separator = parts[0].as_str().unwrap_or_default();
                let text = self.resolve(&parts[1])?;
                Ok(json!(text.as_str().unwrap_or_default().split(separator).collect::<Vec<_>>()))
            }
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" | "Condition" => {
                let mut m = serde_norway::Mapping::new();
                m.insert(Value::String(name.to_owned()), arg.clone());
                Ok(json!(self.truth(&Value::Mapping(m))?))
            }
            other => bail!("intrinsic {other} is not resolved by the test bed"),
        }
    }

    fn truth(&self, expr: &Value) -> anyhow::Result<bool> {
        let (name, arg) = match expr {
            Value::Tagged(t) => {
                let name = t.tag.to_string();
                let name = name.trim_start_matches('!').to_owned();
                (if name == "Condition" { name } else { format!("Fn::{name}") }, t.value.clone())
            }
            Value::Mapping(m) if m.len() == 1 => {
                let (k, v) = m.iter().next().expect("one entry");
                (k.as_str().unwrap_or_default().to_owned(), v.clone())
            }
            Value::Bool(b) => return Ok(*b),
            Value::String(s) => return Ok(s == "true"),
            other => bail!("not a condition: {other:?}"),
        };
        match name.as_str() {
            "Condition" => self.condition(arg.as_str().context("Condition name")?),
            "Fn::Equals" => {
                let parts = arg.as_sequence().filter(|p| p.len() == 2).context("!Equals takes two values")?;
                Ok(self.resolve(&parts[0])? == self.resolve(&parts[1])?)
            }
            "Fn::Not" => Ok(!self.truth(arg.as_sequence().and_then(|p| p.first()).context("!Not takes [condition]")?)?),
            "Fn::And" => {
                let mut all = true;
                for c in arg.as_sequence().context("!And takes a list")? {
                    all &= self.truth(c)?;
                }
                Ok(all)
            }
            "Fn::Or" => {
                let mut any = false;
                for c in arg.as_sequence().context("!Or takes a list")? {
                    any |= self.truth(c)?;
                }
                Ok(any)
            }
            other => bail!("{other} is not a condition function"),
        }
    }

    fn reference(&self, name: &str) -> anyhow::Result<String> {
        match name {
            "AWS::Partition" => Ok("aws".into()),
            "AWS::Region" => Ok(self.region.clone()),
            "AWS::AccountId" => Ok(ACCOUNT.into()),
            "AWS::StackName" => Ok(STACK_NAME.into()),
            "AWS::URLSuffix" => Ok("amazonaws.com".into()),
            "AWS::NoValue" => Ok(NO_VALUE.into()),
            _ => {
                if let Some(v) = self.params.get(name) {
                    return Ok(v.clone());
                }
                if self.template.doc.get("Parameters").and_then(|p| p.get(name)).is_some() {
                    bail!("parameter {name} has no default and the test sets none");
                }
                self.refs.get(name).cloned().ok_or_else(|| anyhow!("the test provides no !Ref {name}"))
            }
        }
    }

    fn substitute(&self, text: &str, vars: &BTreeMap<String, String>) -> anyhow::Result<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            if let Some(literal) = after.strip_prefix('!') {
                // "${!Literal}" writes "${Literal}"
                let end = literal.find('}').context("unclosed ${! in !Sub")?;
                out.push_str("${");
                out.push_str(&literal[..=end]);
                rest = &literal[end + 1..];
                continue;
            }
            let end = after.find('}').context("unclosed ${ in !Sub")?;
            let name = &after[..end];
            let value = if let Some(v) = vars.get(name) {
                v.clone()
            } else if name.contains('.') && !name.starts_with("AWS::") {
                self.attrs.get(name).cloned().ok_or_else(|| anyhow!("the test provides no !GetAtt {name}"))?
            } else {
                self.reference(name)?
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// What `!Ref AWS::NoValue` resolves to before it is dropped from its list.
const NO_VALUE: &str = "\u{0}AWS::NoValue";

fn scalar(v: &Value) -> anyhow::Result<String> {
    Ok(match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => bail!("not a scalar: {other:?}"),
    })
}
