"""IAM policy evaluation as AWS documents it, for the test bed (moto evaluates neither `Condition`
nor, outside S3, `Resource`).

Pure: no moto, no I/O. `evaluate(policies, request)` answers one authorization — one action on one
resource with its request context — the way AWS's policy evaluation logic does for identity-based
policies in one account:

* an explicit `Deny` that matches wins over any `Allow`;
* otherwise an `Allow` that matches allows; otherwise the request is implicitly denied;
* a statement matches when its `Action`/`NotAction`, `Resource`/`NotResource` and every condition
  match. Actions match case-insensitively with `*` and `?`; resources case-sensitively.
* conditions: every operator block and every key in it must match (AND); the values listed for one
  key are alternatives (OR), except for the negated operators, where the key must match none of them.
  A key missing from the request context makes a condition false, and a negated one true; `...IfExists`
  makes a missing key true; `Null` tests presence. `ForAllValues:` is true over an empty or missing
  set, `ForAnyValue:` false.

Anything it does not know — an operator, a condition key, a policy variable — raises `Unsupported`
naming it: the bed never allows what it cannot evaluate.

Sources: AWS IAM User Guide, "Policy evaluation logic", "IAM JSON policy elements: Condition
operators", "Single-valued vs. multivalued context keys", "AWS global condition context keys", and the
Service Authorization Reference for the service keys listed in `KNOWN_KEYS`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone


class Unsupported(Exception):
    """The policy uses something this evaluator cannot evaluate (and so must not allow)."""


# Condition keys the bed knows. A key ending in `/` takes any tag key or suffix after it. Keys are
# case-insensitive in IAM, so they are compared lower-cased.
KNOWN_KEYS = {
    k.lower()
    for k in [
        # global
        "aws:ResourceTag/",
        "aws:RequestTag/",
        "aws:TagKeys",
        "aws:PrincipalArn",
        "aws:PrincipalAccount",
        "aws:PrincipalType",
        "aws:PrincipalTag/",
        "aws:username",
        "aws:userid",
        "aws:SecureTransport",
        "aws:RequestedRegion",
        "aws:CurrentTime",
        "aws:EpochTime",
        "aws:SourceArn",
        "aws:SourceAccount",
        "aws:SourceIp",
        "aws:ViaAWSService",
        "aws:CalledVia",
        # EC2
        "ec2:CreateAction",
        "ec2:LaunchTemplate",
        "ec2:IsLaunchTemplateResource",
        "ec2:ResourceTag/",
        "ec2:Region",
        "ec2:InstanceMarketType",
        "ec2:InstanceType",
        "ec2:Encrypted",
        "ec2:VolumeType",
        "ec2:VolumeSize",
        "ec2:SnapshotID",
        "ec2:ParentVolume",
        "ec2:Owner",
        "ec2:InstanceProfile",
        "ec2:Attribute/",
        # in every request made with an EC2 instance's role credentials (the SSM agent's, say)
        "ec2:SourceInstanceARN",
        # IAM
        "iam:PassedToService",
        "iam:AssociatedResourceArn",
        # S3
        "s3:prefix",
        "s3:delimiter",
        "s3:max-keys",
        "s3:ExistingObjectTag/",
        "s3:RequestObjectTag/",
        "s3:RequestObjectTagKeys",
        "s3:authType",
        "s3:signatureAge",
        "s3:signatureversion",
        "s3:x-amz-server-side-encryption",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "s3:if-none-match",
        "s3:object-lock-mode",
        "s3:object-lock-remaining-retention-days",
        "s3:object-lock-retain-until-date",
        "s3:object-lock-legal-hold",
        "s3:versionid",
        # KMS
        "kms:ViaService",
        "kms:GrantIsForAWSResource",
        "kms:CallerAccount",
        "kms:EncryptionContext:",
        "kms:EncryptionContextKeys",
        # SSM, ELB, SNS, SQS, Secrets Manager, CloudWatch
        "ssm:resourceTag/",
        "ssm:DocumentCategories",
        "elasticloadbalancing:ResourceTag/",
        "sns:Protocol",
        "sns:Endpoint",
        "secretsmanager:SecretId",
        "secretsmanager:ResourceTag/",
        "cloudwatch:AlarmActions",
        "cloudwatch:namespace",
    ]
}

_STRING_OPS = {
    "StringEquals": lambda v, p: v == p,
    "StringEqualsIgnoreCase": lambda v, p: v.lower() == p.lower(),
    "StringLike": lambda v, p: _glob(p, v, case=True),
    "ArnEquals": lambda v, p: _arn_like(p, v),
    "ArnLike": lambda v, p: _arn_like(p, v),
}
_NEGATED_OPS = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
}


@dataclass
class Request:
    """One authorization: an action on one resource ARN (or `*`), with its request context.

    `context` maps condition keys (any case) to a string or, for multivalued keys, a list of strings.
    """

    action: str
    resource: str
    context: dict[str, str | list[str]] = field(default_factory=dict)

    def value(self, key: str) -> str | list[str] | None:
        wanted = key.lower()
        for k, v in self.context.items():
            if k.lower() == wanted:
                return v
        return None


@dataclass
class Decision:
    allowed: bool
    # "Sid" (or "#n" for a statement without one) prefixed by its policy's name, for each statement
    # that decided: the matching Deny, or every matching Allow.
    statements: list[str]
    reason: str


def evaluate(policies: list[tuple[str, dict]], request: Request) -> Decision:
    """Decides `request` under `policies`, a list of (policy name, policy document)."""
    allows: list[str] = []
    denies: list[str] = []
    for name, document in policies:
        check_supported(document)
        for index, statement in enumerate(_statements(document)):
            if not _statement_matches(statement, request):
                continue
            label = f"{name}/{statement.get('Sid') or '#' + str(index)}"
            (denies if statement.get("Effect") == "Deny" else allows).append(label)
    if denies:
        return Decision(False, denies, "explicit deny")
    if allows:
        return Decision(True, allows, "allowed")
    return Decision(False, [], "implicit deny: no statement allows it")


def check_supported(document: dict) -> None:
    """Raises `Unsupported` for any operator, key or policy variable this evaluator cannot evaluate,
    in any statement of the document (not only those a request reaches)."""
    for statement in _statements(document):
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise Unsupported(f"statement effect {statement.get('Effect')!r}")
        for element in ("Principal", "NotPrincipal"):
            if element in statement:
                raise Unsupported(f"{element} in an identity-based policy")
        for element in ("Action", "NotAction", "Resource", "NotResource"):
            for value in _as_list(statement.get(element, [])):
                if "${" in str(value):
                    raise Unsupported(f"policy variable in {element}: {value}")
        for operator, block in (statement.get("Condition") or {}).items():
            _parse_operator(operator)
            if not isinstance(block, dict):
                raise Unsupported(f"condition block of {operator} is not a map")
            for key, values in block.items():
                if not is_known_key(key):
                    raise Unsupported(f"condition key {key!r} (operator {operator})")
                for v in _as_list(values):
                    if "${" in _text(v):
                        raise Unsupported(f"policy variable in condition {operator} {key}: {v}")


def is_known_key(key: str) -> bool:
    lowered = key.lower()
    if lowered in KNOWN_KEYS:
        return True
    return any(k.endswith(("/", ":")) and lowered.startswith(k) and len(lowered) > len(k) for k in KNOWN_KEYS)


def _statements(document: dict) -> list[dict]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _statement_matches(statement: dict, request: Request) -> bool:
    if "Action" in statement:
        if not any(_glob(p, request.action, case=False) for p in _as_list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(_glob(p, request.action, case=False) for p in _as_list(statement["NotAction"])):
            return False
    else:
        raise Unsupported("statement without Action or NotAction")
    if "Resource" in statement:
        if not any(_resource_matches(p, request.resource) for p in _as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(_resource_matches(p, request.resource) for p in _as_list(statement["NotResource"])):
            return False
    else:
        raise Unsupported("statement without Resource or NotResource")
    return all(
        condition_matches(operator, key, values, request)
        for operator, block in (statement.get("Condition") or {}).items()
        for key, values in block.items()
    )


def _resource_matches(pattern: str, resource: str) -> bool:
    # An action without resource-level permissions is authorized against "*", which only "*" (or a
    # pattern of wildcards alone) matches.
    return _glob(pattern, resource, case=True)


def _parse_operator(operator: str) -> tuple[str | None, str, bool]:
    """(set qualifier, base operator, if-exists) for an operator name, or Unsupported."""
    qualifier = None
    for q in ("ForAllValues:", "ForAnyValue:"):
        if operator.startswith(q):
            qualifier, operator = q[:-1], operator[len(q) :]
    if_exists = operator.endswith("IfExists") and operator != "IfExists"
    base = operator[: -len("IfExists")] if if_exists else operator
    known = (
        set(_STRING_OPS)
        | set(_NEGATED_OPS)
        | {"Bool", "Null", "NumericEquals", "NumericLessThan", "NumericLessThanEquals", "NumericGreaterThan"}
        | {"NumericGreaterThanEquals", "DateEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan"}
        | {"DateGreaterThanEquals", "IpAddress", "BinaryEquals"}
    )
    if base not in known or (base == "Null" and (if_exists or qualifier)):
        raise Unsupported(f"condition operator {operator!r}")
    return qualifier, base, if_exists


def condition_matches(operator: str, key: str, policy_values, request: Request) -> bool:  # noqa: ANN001
    """One key of one operator block, as AWS evaluates it."""
    qualifier, base, if_exists = _parse_operator(operator)
    if not is_known_key(key):
        raise Unsupported(f"condition key {key!r}")
    wanted = [_text(v) for v in _as_list(policy_values)]
    present = request.value(key)

    if base == "Null":
        # "true": the key must be absent; "false": present. An empty set counts as absent.
        absent = present is None or present == []
        return any((w.lower() == "true") == absent for w in wanted)

    if qualifier == "ForAllValues":
        values = _as_list(present) if present is not None else []
        return all(_single(base, v, wanted) for v in values)
    if qualifier == "ForAnyValue":
        values = _as_list(present) if present is not None else []
        return any(_single(base, v, wanted) for v in values)

    if present is None:
        if if_exists:
            return True
        return base in _NEGATED_OPS
    # A multivalued key under a plain operator: true if any of its values matches.
    return any(_single(base, v, wanted) for v in _as_list(present))


def _single(base: str, value: str, wanted: list[str]) -> bool:
    """A single request value against the policy's values: any of them (none, when negated)."""
    if base in _NEGATED_OPS:
        return not _single(_NEGATED_OPS[base], value, wanted)
    value = _text(value)
    if base in _STRING_OPS:
        return any(_STRING_OPS[base](value, w) for w in wanted)
    if base == "Bool":
        return any(value.lower() == w.lower() for w in wanted)
    if base == "BinaryEquals":
        return any(value == w for w in wanted)
    if base.startswith("Numeric"):
        return any(_compare(base[len("Numeric") :], _number(value), _number(w)) for w in wanted)
    if base.startswith("Date"):
        return any(_compare(base[len("Date") :], _date(value), _date(w)) for w in wanted)
    if base == "IpAddress":
        return any(ipaddress.ip_address(value) in ipaddress.ip_network(w, strict=False) for w in wanted)
    raise Unsupported(f"condition operator {base!r}")


def _compare(how: str, a, b) -> bool:  # noqa: ANN001
    return {
        "Equals": a == b,
        "LessThan": a < b,
        "LessThanEquals": a <= b,
        "GreaterThan": a > b,
        "GreaterThanEquals": a >= b,
    }[how]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError as err:
        raise Unsupported(f"not a number: {text!r}") from err


def _date(text: str) -> datetime:
    if re.fullmatch(r"\d+", text):
        return datetime.fromtimestamp(int(text), timezone.utc)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _text(value) -> str:  # noqa: ANN001
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_list(value) -> list:  # noqa: ANN001
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _glob(pattern: str, text: str, case: bool) -> bool:
    """IAM's wildcard match: `*` any run of characters (`:` and `/` included), `?` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, 0 if case else re.IGNORECASE | re.DOTALL) is not None


def _arn_like(pattern: str, arn: str) -> bool:
    """ArnLike/ArnEquals: the six ARN parts are matched one by one, each with wildcards (a `*` in
    one part does not reach into the next), the resource part keeping its own `:` and `/`."""
    p = pattern.split(":", 5)
    a = arn.split(":", 5)
    if len(p) != 6 or len(a) != 6:
        return False
    return all(_glob(pp, aa, case=True) for pp, aa in zip(p, a))
