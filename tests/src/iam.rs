//! IAM principals for the functions under test, holding exactly the template's grants.
//!
//! Each function runs as an IAM user whose inline policy is its template statements as written:
//! actions, resources and conditions, with the template's intrinsics resolved to the test's own
//! account ([`Stack`]). The test bed evaluates them as AWS does (testbed/iam_bed.py), so a grant
//! that is too narrow fails the test that needs it, and the decision log says which statement
//! allowed each call.

use std::collections::BTreeSet;

use anyhow::Context;
use serde_json::json;

use crate::emulator::{Emulator, Keys};
use crate::stack::Stack;
use crate::template::Statement;

pub struct Principal {
    pub user: String,
    pub keys: Keys,
    /// Every action the template grants the function.
    pub granted: BTreeSet<String>,
    /// The policy as the emulator holds it (resolved).
    pub policy: serde_json::Value,
}

impl Principal {
    /// An IAM user named after the function, holding its template policy exactly as written (a
    /// statement under a template condition only when the stack's parameters make it true).
    pub async fn for_function(emulator: &Emulator, logical_id: &str, stack: &Stack) -> anyhow::Result<Self> {
        let statements = stack.template().function_statements(logical_id)?;
        Self::holding(emulator, logical_id, &statements, stack).await
    }

    /// A user holding an `AWS::IAM::Role`'s inline policies: an instance's role, as its instance uses it.
    pub async fn for_role(emulator: &Emulator, logical_id: &str, stack: &Stack) -> anyhow::Result<Self> {
        let statements = stack.template().role_statements(logical_id)?;
        Self::holding(emulator, logical_id, &statements, stack).await
    }

    async fn holding(
        emulator: &Emulator,
        logical_id: &str,
        statements: &[Statement],
        stack: &Stack,
    ) -> anyhow::Result<Self> {
        // A statement under a template condition (`!If [Condition, statement, !Ref AWS::NoValue]`)
        // exists only when the stack's parameters make the condition true.
        let mut present = Vec::new();
        for s in statements {
            let when = s.when.as_deref().map(|c| stack.condition(c)).transpose();
            if when.with_context(|| format!("{logical_id} {:?}: condition", s.sid))?.unwrap_or(true) {
                present.push(s);
            }
        }
        let granted: BTreeSet<String> = present.iter().flat_map(|s| s.actions.iter().cloned()).collect();
        let mut resolved = Vec::new();
        for s in present {
            let mut statement = json!({"Effect": s.effect, "Action": s.actions});
            let object = statement.as_object_mut().expect("an object");
            if let Some(sid) = &s.sid {
                object.insert("Sid".into(), json!(sid));
            }
            let resource = stack.resolve(&s.resource).with_context(|| format!("{logical_id} {:?}: Resource", s.sid))?;
            object.insert("Resource".into(), resource);
            if let Some(condition) = &s.condition {
                let condition =
                    stack.resolve(condition).with_context(|| format!("{logical_id} {:?}: Condition", s.sid))?;
                object.insert("Condition".into(), condition);
            }
            resolved.push(statement);
        }
        let policy = json!({"Version": "2012-10-17", "Statement": resolved});
        let iam = aws_sdk_iam::Client::new(&emulator.admin().await);
        iam.create_user().user_name(logical_id).send().await.context("CreateUser")?;
        iam.put_user_policy()
            .user_name(logical_id)
            .policy_name("template")
            .policy_document(policy.to_string())
            .send()
            .await
            .context("PutUserPolicy")?;
        let key = iam.create_access_key().user_name(logical_id).send().await.context("CreateAccessKey")?;
        let key = key.access_key.context("no access key")?;
        Ok(Principal {
            user: logical_id.to_owned(),
            keys: Keys { access_key_id: key.access_key_id, secret_access_key: key.secret_access_key },
            granted,
            policy,
        })
    }

    /// Takes actions away with an explicit Deny, the way a broken permission boundary or SCP would:
    /// for tests of what a function does when AWS refuses it.
    pub async fn deny(&self, emulator: &Emulator, actions: &[&str]) -> anyhow::Result<()> {
        let iam = aws_sdk_iam::Client::new(&emulator.admin().await);
        iam.put_user_policy()
            .user_name(&self.user)
            .policy_name("outage")
            .policy_document(
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": actions, "Resource": "*"}]})
                    .to_string(),
            )
            .send()
            .await
            .context("PutUserPolicy (deny)")?;
        Ok(())
    }

    pub async fn restore(&self, emulator: &Emulator) -> anyhow::Result<()> {
        let iam = aws_sdk_iam::Client::new(&emulator.admin().await);
        iam.delete_user_policy()
            .user_name(&self.user)
            .policy_name("outage")
            .send()
            .await
            .context("DeleteUserPolicy")?;
        Ok(())
    }
}
