//! The gateway stack (stacks/gateway.yaml) as CloudFormation would receive it, rendered offline by
//! testbed/render_gateway.py (template.yaml through the SAM translator with DeployGateway=true, the
//! gateway stack once per tier with its conditions resolved), and its user data as an instance gets it.

use std::{collections::BTreeMap, process::Command, sync::OnceLock};

use serde_json::Value;

use crate::workspace_root;

/// The rendered templates by file name (`template.json`, `gateway-full.json`, `gateway-budget.json`),
/// rendered once per test binary into a scratch directory that is removed again.
pub fn rendered() -> &'static BTreeMap<String, Value> {
    static RENDERED: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let root = workspace_root();
        let python = root.join(".venv-checkov/bin/python");
        assert!(python.exists(), "{} is missing: run ./testbed/setup.sh", python.display());
        let dir = std::env::temp_dir().join(format!("openclaw-gateway-stack-{}", std::process::id()));
        let out = Command::new(python).arg(root.join("testbed/render_gateway.py")).arg(&dir).output().unwrap();
        assert!(out.status.success(), "render_gateway.py: {}", String::from_utf8_lossy(&out.stderr));
        let files = ["template.json", "gateway-full.json", "gateway-budget.json"]
            .map(|f| (f.to_owned(), serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap()));
        std::fs::remove_dir_all(&dir).unwrap();
        files.into_iter().collect()
    })
}

/// One tier's rendered gateway stack.
pub fn tier(name: &str) -> Value {
    rendered()[&format!("gateway-{name}.json")].clone()
}

/// The instance's user data with every `${...}` of its Fn::Sub given a value: `values` first, then
/// the Sub's own variables, then the parameters' defaults, else a plausible `x-name`.
pub fn user_data(t: &Value, values: &BTreeMap<&str, String>) -> String {
    let sub = &t["Resources"]["GatewayLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"];
    let (text, vars) = (sub[0].as_str().unwrap(), &sub[1]);
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').unwrap();
        let name = &rest[start + 2..end];
        let value = if let Some(literal) = name.strip_prefix('!') {
            format!("${{{literal}}}")
        } else if let Some(v) = values.get(name) {
            v.clone()
        } else if let Some(v) = vars.get(name).and_then(Value::as_str) {
            v.to_owned()
        } else if let Some(v) = t["Parameters"].get(name).and_then(|p| match &p["Default"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }) {
            v
        } else {
            assert!(
                name.starts_with("AWS::") || t["Resources"].get(name).is_some() || t["Parameters"].get(name).is_some(),
                "user data names {name}, which the template does not have"
            );
            format!("x-{}", name.replace("::", "-").to_lowercase())
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}
