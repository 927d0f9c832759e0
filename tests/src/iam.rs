//! IAM principals for the functions under test, holding exactly the template's grants.
//!
//! moto evaluates actions but not Condition keys, and outside S3 honours only `Resource: "*"`
//! (docs/ARCHITECTURE.md, "The local emulator and its known gaps"). So the test user gets the template's statements with the same
//! actions and `Resource: "*"`; the real scoping is checked over the parsed template instead
//! (tests/tests/template.rs).

use std::collections::BTreeSet;

use anyhow::Context;
use serde_json::json;

use crate::emulator::{Emulator, Keys};
use crate::template::{Statement, Template};

pub struct Principal {
    pub user: String,
    pub keys: Keys,
    /// Every action the template grants the function.
    pub granted: BTreeSet<String>,
}

impl Principal {
    /// An IAM user named after the function, holding its template policy (actions as granted).
    pub async fn for_function(emulator: &Emulator, logical_id: &str) -> anyhow::Result<Self> {
        let statements = Template::load()?.function_statements(logical_id)?;
        Self::holding(emulator, logical_id, &statements, |_| Ok(json!("*"))).await
    }

    /// A user holding a managed policy of the template: the gateway's instance role, say. moto does
    /// evaluate S3 resource ARNs, so `resource` may resolve those (`BackupBucket.Arn`...) for real.
    pub async fn for_managed_policy(
        emulator: &Emulator,
        logical_id: &str,
        resource: impl Fn(&Statement) -> anyhow::Result<serde_json::Value>,
    ) -> anyhow::Result<Self> {
        let statements = Template::load()?.managed_policy_statements(logical_id)?;
        Self::holding(emulator, logical_id, &statements, resource).await
    }

    async fn holding(
        emulator: &Emulator,
        logical_id: &str,
        statements: &[Statement],
        resource: impl Fn(&Statement) -> anyhow::Result<serde_json::Value>,
    ) -> anyhow::Result<Self> {
        let granted: BTreeSet<String> = statements.iter().flat_map(|s| s.actions.iter().cloned()).collect();
        let widened: Vec<_> = statements
            .iter()
            .map(|s| Ok(json!({"Sid": s.sid, "Effect": s.effect, "Action": s.actions, "Resource": resource(s)?})))
            .map(|v: anyhow::Result<serde_json::Value>| {
                let mut v = v?;
                if v["Sid"].is_null() {
                    v.as_object_mut().unwrap().remove("Sid");
                }
                Ok(v)
            })
            .collect::<anyhow::Result<_>>()?;
        let iam = aws_sdk_iam::Client::new(&emulator.admin().await);
        iam.create_user().user_name(logical_id).send().await.context("CreateUser")?;
        iam.put_user_policy()
            .user_name(logical_id)
            .policy_name("template")
            .policy_document(json!({"Version": "2012-10-17", "Statement": widened}).to_string())
            .send()
            .await
            .context("PutUserPolicy")?;
        let key = iam.create_access_key().user_name(logical_id).send().await.context("CreateAccessKey")?;
        let key = key.access_key.context("no access key")?;
        Ok(Principal {
            user: logical_id.to_owned(),
            keys: Keys { access_key_id: key.access_key_id, secret_access_key: key.secret_access_key },
            granted,
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
