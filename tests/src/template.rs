//! template.yaml, read as data: the policies the template grants each function are what the tests
//! run that function with.

use anyhow::{Context, anyhow};
use serde_norway::Value;

use crate::workspace_root;

/// One IAM statement from a function's `Policies`.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: String,
    pub actions: Vec<String>,
    /// As written: a string, a list, or an intrinsic (`!Sub`, `!Ref`, `!GetAtt`).
    pub resource: Value,
    pub condition: Option<Value>,
    /// The template condition the statement is granted under (`!If [Condition, statement,
    /// !Ref AWS::NoValue]`), if any.
    pub when: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub doc: Value,
}

impl Template {
    pub fn load() -> anyhow::Result<Self> {
        Self::load_file("template.yaml")
    }

    /// Another template of the project, by its path from the workspace root.
    pub fn load_file(relative: &str) -> anyhow::Result<Self> {
        let path = workspace_root().join(relative);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Template { doc: serde_norway::from_str(&text).with_context(|| format!("parsing {relative}"))? })
    }

    pub fn resource(&self, logical_id: &str) -> anyhow::Result<&Value> {
        self.doc.get("Resources").and_then(|r| r.get(logical_id)).ok_or_else(|| anyhow!("no resource {logical_id}"))
    }

    /// The inline statements of a function's `Policies` (SAM policy templates and managed policy
    /// names are not used by this suite, and are refused here so they cannot slip past the tests).
    pub fn function_statements(&self, logical_id: &str) -> anyhow::Result<Vec<Statement>> {
        let mut out = Vec::new();
        for policy in self.policies(logical_id)? {
            out.extend(statements(logical_id, policy)?);
        }
        Ok(out)
    }

    /// The inline statements of an `AWS::IAM::Role`'s `Policies` (each `{PolicyName, PolicyDocument}`).
    pub fn role_statements(&self, logical_id: &str) -> anyhow::Result<Vec<Statement>> {
        let mut out = Vec::new();
        for policy in self.policies(logical_id)? {
            let document =
                policy.get("PolicyDocument").ok_or_else(|| anyhow!("{logical_id}: a policy without PolicyDocument"))?;
            out.extend(statements(logical_id, document)?);
        }
        Ok(out)
    }

    /// A resource's `Properties.Policies` list (a function's or a role's).
    fn policies(&self, logical_id: &str) -> anyhow::Result<&Vec<Value>> {
        self.resource(logical_id)?
            .get("Properties")
            .and_then(|p| p.get("Policies"))
            .and_then(Value::as_sequence)
            .ok_or_else(|| anyhow!("{logical_id} has no Policies list"))
    }

    /// Names of the environment variables the template sets for a function.
    pub fn function_environment(&self, logical_id: &str) -> anyhow::Result<Vec<String>> {
        let vars = self
            .resource(logical_id)?
            .get("Properties")
            .and_then(|p| p.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
            .ok_or_else(|| anyhow!("{logical_id} has no Environment.Variables"))?;
        Ok(vars.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect())
    }
}

fn statements(logical_id: &str, document: &Value) -> anyhow::Result<Vec<Statement>> {
    let list = document
        .get("Statement")
        .and_then(Value::as_sequence)
        .ok_or_else(|| anyhow!("{logical_id}: only inline policy documents are supported, got {document:?}"))?;
    let mut out = Vec::new();
    for s in list {
        // `!If [Condition, statement, !Ref AWS::NoValue]`: a statement granted only under a condition.
        let (s, when) = match s {
            Value::Tagged(tagged) if tagged.tag.to_string().trim_start_matches('!') == "If" => {
                let parts = tagged.value.as_sequence().filter(|p| p.len() == 3);
                let parts = parts.ok_or_else(|| anyhow!("{logical_id}: !If takes [condition, statement, NoValue]"))?;
                let condition = parts[0].as_str().ok_or_else(|| anyhow!("{logical_id}: !If condition name"))?;
                (&parts[1], Some(condition.to_owned()))
            }
            other => (other, None),
        };
        let actions = match s.get("Action") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Sequence(list)) => list
                .iter()
                .map(|a| a.as_str().map(str::to_owned).ok_or_else(|| anyhow!("action {a:?}")))
                .collect::<Result<_, _>>()?,
            other => return Err(anyhow!("{logical_id}: statement without Action: {other:?}")),
        };
        out.push(Statement {
            sid: s.get("Sid").and_then(Value::as_str).map(str::to_owned),
            effect: s.get("Effect").and_then(Value::as_str).unwrap_or_default().to_owned(),
            actions,
            resource: s.get("Resource").cloned().unwrap_or(Value::Null),
            condition: s.get("Condition").cloned(),
            when,
        });
    }
    Ok(out)
}
