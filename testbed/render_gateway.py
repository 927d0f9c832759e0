"""Renders, offline, what CloudFormation would receive when template.yaml deploys the gateway stack.

- template.json: template.yaml with DeployGateway=true through the AWS SAM translator (the transform
  CloudFormation runs), local CodeUri/Location paths replaced by S3 URIs as `sam package` would.
- gateway-full.json, gateway-budget.json: stacks/gateway.yaml with its conditions resolved for each
  tier (Fn::If, resource conditions, AWS::NoValue), so cfn-lint, checkov and the tests see exactly
  one tier's resources. The optional features (Spot, a hosted zone, geo-blocking) are switched on so
  that every resource and statement a tier can have is checked.

Usage: render_gateway.py OUT_DIR   (run with the checkov venv's Python: it holds aws-sam-translator)
"""

import copy
import json
import os
import sys
from pathlib import Path

from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent

# The tiers' parameter values; the other parameters keep their defaults or get a plausible value.
TIER_PARAMETERS = {
    tier: {
        "Tier": tier,
        "UseSpot": "true",
        "HostedZoneId": "Z0123456789ABCDEFGHIJ",
        "GeoBlockCountries": ["KP"],
        "DomainName": "openclaw.example.com",
        "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:openclaw-ops-OpsTopic",
    }
    for tier in ("full", "budget")
}


class Unresolved(Exception):
    pass


def parameter_value(name, params, template):
    if name in params:
        return params[name]
    default = template.get("Parameters", {}).get(name, {}).get("Default")
    if default is None:
        raise Unresolved(f"parameter {name} has no value and no default")
    if template["Parameters"][name].get("Type") == "CommaDelimitedList":
        return [] if default == "" else default.split(",")
    return default


def evaluate(expr, params, template, conditions):
    """The value of a condition expression (Fn::Equals/Not/And/Or/Condition over parameters)."""
    if isinstance(expr, dict) and len(expr) == 1:
        (fn, arg), = expr.items()
        if fn == "Fn::Equals":
            a, b = (value_of(x, params, template) for x in arg)
            return a == b
        if fn == "Fn::Not":
            return not evaluate(arg[0], params, template, conditions)
        if fn == "Fn::And":
            return all(evaluate(x, params, template, conditions) for x in arg)
        if fn == "Fn::Or":
            return any(evaluate(x, params, template, conditions) for x in arg)
        if fn == "Condition":
            return condition(arg, params, template, conditions)
    raise Unresolved(f"condition expression {expr!r}")


def value_of(expr, params, template):
    """A plain value in a condition: a literal, a parameter's Ref, or a Join over them."""
    if isinstance(expr, (str, int, float, bool)):
        return str(expr)
    if isinstance(expr, dict) and "Ref" in expr:
        value = parameter_value(expr["Ref"], params, template)
        return value
    if isinstance(expr, dict) and "Fn::Join" in expr:
        sep, items = expr["Fn::Join"]
        items = value_of(items, params, template)
        return sep.join(items if isinstance(items, list) else [items])
    if isinstance(expr, list):
        return [value_of(x, params, template) for x in expr]
    raise Unresolved(f"value {expr!r}")


def condition(name, params, template, conditions):
    if name not in conditions:
        conditions[name] = evaluate(template["Conditions"][name], params, template, conditions)
    return conditions[name]


NO_VALUE = object()


def resolve(node, params, template, conditions):
    """The node with every Fn::If decided and every AWS::NoValue removed."""
    if isinstance(node, dict):
        if len(node) == 1 and "Fn::If" in node:
            name, yes, no = node["Fn::If"]
            chosen = yes if condition(name, params, template, conditions) else no
            return resolve(chosen, params, template, conditions)
        if node == {"Ref": "AWS::NoValue"}:
            return NO_VALUE
        # A tier's settings come from Mappings keyed by the Tier parameter.
        if len(node) == 1 and "Fn::FindInMap" in node:
            keys = [value_of(k, params, template) for k in node["Fn::FindInMap"]]
            if all(isinstance(k, str) for k in keys):
                return template["Mappings"][keys[0]][keys[1]][keys[2]]
        out = {}
        for key, value in node.items():
            value = resolve(value, params, template, conditions)
            if value is not NO_VALUE:
                out[key] = value
        return out
    if isinstance(node, list):
        items = [resolve(x, params, template, conditions) for x in node]
        return [x for x in items if x is not NO_VALUE]
    return node


def render_tier(template, tier):
    params = TIER_PARAMETERS[tier]
    conditions = {}
    for name in template.get("Conditions", {}):
        condition(name, params, template, conditions)
    out = copy.deepcopy(template)
    out.pop("Conditions", None)
    resources = {}
    for logical_id, resource in template["Resources"].items():
        if "Condition" in resource and not conditions[resource["Condition"]]:
            continue
        resource = resolve({k: v for k, v in resource.items() if k != "Condition"}, params, template, conditions)
        resources[logical_id] = resource
    out["Resources"] = resources
    outputs = {}
    for name, output in template.get("Outputs", {}).items():
        if "Condition" in output and not conditions[output["Condition"]]:
            continue
        outputs[name] = resolve({k: v for k, v in output.items() if k != "Condition"}, params, template, conditions)
    out["Outputs"] = outputs
    # The tier is fixed now; the parameter stays (the template still refers to it), pinned.
    for name, value in params.items():
        parameter = out["Parameters"].get(name)
        if parameter is None:
            continue
        parameter["Default"] = ",".join(value) if isinstance(value, list) else value
        if "AllowedValues" in parameter:
            parameter["AllowedValues"] = [parameter["Default"]]
    # Parameters only conditions used are gone with the conditions.
    body = json.dumps([resources, outputs])
    for name in list(out["Parameters"]):
        if f'"Ref": "{name}"' not in body and "${" + name + "}" not in body:
            del out["Parameters"][name]
    if "Fn::FindInMap" not in body:
        out.pop("Mappings", None)
    dangling = [r for r in resources if any(dep not in resources for dep in depends_on(resources[r]))]
    if dangling:
        raise Unresolved(f"{tier}: DependsOn names a resource of the other tier: {dangling}")
    return out


def depends_on(resource):
    deps = resource.get("DependsOn", [])
    return [deps] if isinstance(deps, str) else deps


def render_parent():
    template = yaml_parse((ROOT / "template.yaml").read_text())
    # What `sam package` does: local code and nested templates become S3 objects.
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = f"s3://openclaw-ops-packages/{logical_id}.zip"
        if resource["Type"] == "AWS::Serverless::Application" and isinstance(props.get("Location"), str):
            props["Location"] = f"https://openclaw-ops-packages.s3.amazonaws.com/{Path(props['Location']).name}"
    parameters = {
        "DeployGateway": "true",
        "GatewayDomainName": "openclaw.example.com",
        "TelegramChats": "-1001234567890",
    }
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    translated = Translator(managed_policy_map={}, sam_parser=Parser()).translate(
        sam_template=template, parameter_values=parameters, get_managed_policy_map=lambda: {}
    )
    return translated


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    gateway = yaml_parse((ROOT / "stacks" / "gateway.yaml").read_text())
    for tier in ("full", "budget"):
        path = out_dir / f"gateway-{tier}.json"
        path.write_text(json.dumps(render_tier(gateway, tier), indent=1, default=str))
    (out_dir / "template.json").write_text(json.dumps(render_parent(), indent=1, default=str))
    print(f"rendered template.json, gateway-full.json, gateway-budget.json into {out_dir}")


if __name__ == "__main__":
    main()
