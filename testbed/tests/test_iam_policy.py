"""The bed's IAM evaluator against AWS's documented examples (IAM User Guide: policy evaluation
logic, condition operators, multivalued context keys, EC2 and S3 examples)."""

import pytest

from iam_policy import Request, Unsupported, condition_matches, evaluate


def policy(*statements):
    return [("p", {"Version": "2012-10-17", "Statement": list(statements)})]


def allow(action, resource="*", condition=None, sid=None):
    s = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        s["Condition"] = condition
    if sid:
        s["Sid"] = sid
    return s


def deny(action, resource="*", condition=None):
    s = {"Effect": "Deny", "Action": action, "Resource": resource}
    if condition:
        s["Condition"] = condition
    return s


SNAP = "arn:aws:ec2:us-east-1::snapshot/snap-1"
VOL = "arn:aws:ec2:us-east-1:123456789012:volume/vol-1"


def test_explicit_deny_wins_over_allow():
    d = evaluate(policy(allow("ec2:*"), deny("ec2:DeleteSnapshot")), Request("ec2:DeleteSnapshot", SNAP))
    assert not d.allowed and d.reason == "explicit deny"


def test_nothing_allows_is_implicit_deny():
    d = evaluate(policy(allow("ec2:DescribeVolumes")), Request("ec2:DeleteSnapshot", SNAP))
    assert not d.allowed and d.reason.startswith("implicit deny")


def test_allow_names_every_matching_statement():
    d = evaluate(policy(allow("ec2:*", sid="A"), allow("ec2:Delete*", sid="B")), Request("ec2:DeleteSnapshot", SNAP))
    assert d.allowed and d.statements == ["p/A", "p/B"]


def test_actions_match_case_insensitively_resources_case_sensitively():
    assert evaluate(policy(allow("EC2:deletesnapshot", SNAP)), Request("ec2:DeleteSnapshot", SNAP)).allowed
    assert not evaluate(policy(allow("ec2:DeleteSnapshot", SNAP.upper())), Request("ec2:DeleteSnapshot", SNAP)).allowed


def test_resource_wildcards_and_star_only_for_actions_without_resources():
    assert evaluate(policy(allow("ec2:CreateSnapshot", "arn:aws:ec2:us-east-1:*:volume/*")), Request("ec2:CreateSnapshot", VOL)).allowed
    # the snapshot ARN has no account: a pattern with one does not match it
    assert not evaluate(policy(allow("ec2:DeleteSnapshot", "arn:aws:ec2:us-east-1:123456789012:snapshot/*")), Request("ec2:DeleteSnapshot", SNAP)).allowed
    # an action without resource-level permissions is authorized against "*"
    assert not evaluate(policy(allow("ec2:DescribeVolumes", "arn:aws:ec2:*:*:volume/*")), Request("ec2:DescribeVolumes", "*")).allowed
    assert evaluate(policy(allow("ec2:DescribeVolumes", "*")), Request("ec2:DescribeVolumes", "*")).allowed


def test_not_action_and_not_resource():
    p = policy({"Effect": "Allow", "NotAction": "ec2:Delete*", "Resource": "*"})
    assert evaluate(p, Request("ec2:CreateSnapshot", SNAP)).allowed
    assert not evaluate(p, Request("ec2:DeleteSnapshot", SNAP)).allowed
    p = policy({"Effect": "Allow", "Action": "ec2:*", "NotResource": VOL})
    assert not evaluate(p, Request("ec2:AttachVolume", VOL)).allowed


def test_string_equals_missing_key_does_not_match():
    c = {"StringEquals": {"aws:ResourceTag/openclaw:managed-by": "openclaw-ops"}}
    p = policy(allow("ec2:DeleteSnapshot", "*", c))
    assert not evaluate(p, Request("ec2:DeleteSnapshot", SNAP, {})).allowed
    assert not evaluate(p, Request("ec2:DeleteSnapshot", SNAP, {"aws:ResourceTag/openclaw:managed-by": "me"})).allowed
    assert evaluate(p, Request("ec2:DeleteSnapshot", SNAP, {"aws:ResourceTag/openclaw:managed-by": "openclaw-ops"})).allowed


def test_condition_keys_are_case_insensitive_values_are_not():
    c = {"StringEquals": {"AWS:resourcetag/Role": "gateway"}}
    assert condition_matches("StringEquals", "AWS:resourcetag/Role", "gateway", Request("a", "*", {"aws:ResourceTag/role": "gateway"}))
    assert not condition_matches("StringEquals", "aws:ResourceTag/role", "gateway", Request("a", "*", {"aws:ResourceTag/role": "Gateway"}))
    assert c


def test_negated_operator_missing_key_is_true_and_lists_are_nor():
    r = Request("a", "*", {})
    assert condition_matches("StringNotEquals", "aws:ResourceTag/x", ["a", "b"], r)
    r = Request("a", "*", {"aws:ResourceTag/x": "b"})
    assert not condition_matches("StringNotEquals", "aws:ResourceTag/x", ["a", "b"], r)
    r = Request("a", "*", {"aws:ResourceTag/x": "c"})
    assert condition_matches("StringNotEquals", "aws:ResourceTag/x", ["a", "b"], r)


def test_values_of_one_key_are_alternatives_keys_and_blocks_are_all_required():
    c = {"StringEquals": {"ec2:CreateAction": ["CreateSnapshot", "RunInstances"], "aws:RequestTag/a": "1"}}
    p = policy(allow("ec2:CreateTags", "*", c))
    assert evaluate(p, Request("ec2:CreateTags", SNAP, {"ec2:CreateAction": "RunInstances", "aws:RequestTag/a": "1"})).allowed
    assert not evaluate(p, Request("ec2:CreateTags", SNAP, {"ec2:CreateAction": "RunInstances"})).allowed


def test_create_action_only_on_tag_on_create():
    # ec2:CreateAction is in the context only when CreateTags is authorized as part of a create call
    c = {"StringEquals": {"ec2:CreateAction": "CreateSnapshot"}}
    p = policy(allow("ec2:CreateTags", "arn:aws:ec2:us-east-1::snapshot/*", c))
    assert evaluate(p, Request("ec2:CreateTags", "arn:aws:ec2:us-east-1::snapshot/*", {"ec2:CreateAction": "CreateSnapshot"})).allowed
    assert not evaluate(p, Request("ec2:CreateTags", SNAP, {"aws:RequestTag/openclaw:date": "2026-01-01"})).allowed


def test_if_exists():
    r = Request("a", "*", {})
    assert condition_matches("StringEqualsIfExists", "ec2:InstanceType", "t3.micro", r)
    assert not condition_matches("StringEqualsIfExists", "ec2:InstanceType", "t3.micro", Request("a", "*", {"ec2:InstanceType": "t3.large"}))


def test_null():
    assert condition_matches("Null", "aws:RequestTag/x", "true", Request("a", "*", {}))
    assert not condition_matches("Null", "aws:RequestTag/x", "true", Request("a", "*", {"aws:RequestTag/x": ""}))
    assert condition_matches("Null", "aws:RequestTag/x", "false", Request("a", "*", {"aws:RequestTag/x": "v"}))
    assert condition_matches("Null", "aws:TagKeys", "true", Request("a", "*", {"aws:TagKeys": []}))


def test_for_all_values_over_an_empty_or_missing_set_is_true():
    assert condition_matches("ForAllValues:StringEquals", "aws:TagKeys", ["a"], Request("x", "*", {}))
    assert condition_matches("ForAllValues:StringEquals", "aws:TagKeys", ["a"], Request("x", "*", {"aws:TagKeys": []}))
    assert condition_matches("ForAllValues:StringEquals", "aws:TagKeys", ["a", "b"], Request("x", "*", {"aws:TagKeys": ["a", "b"]}))
    assert not condition_matches("ForAllValues:StringEquals", "aws:TagKeys", ["a"], Request("x", "*", {"aws:TagKeys": ["a", "c"]}))


def test_for_any_value():
    assert not condition_matches("ForAnyValue:StringEquals", "aws:TagKeys", ["a"], Request("x", "*", {}))
    assert condition_matches("ForAnyValue:StringEquals", "aws:TagKeys", ["a"], Request("x", "*", {"aws:TagKeys": ["c", "a"]}))
    assert not condition_matches("ForAnyValue:StringEquals", "aws:TagKeys", ["a"], Request("x", "*", {"aws:TagKeys": ["c"]}))


def test_string_like_wildcards():
    assert condition_matches("StringLike", "s3:prefix", "openclaw/*", Request("x", "*", {"s3:prefix": "openclaw/daily/gw/"}))
    assert condition_matches("StringLike", "s3:prefix", "open?law/", Request("x", "*", {"s3:prefix": "openclaw/"}))
    assert not condition_matches("StringLike", "s3:prefix", "openclaw/*", Request("x", "*", {"s3:prefix": "other/"}))
    assert not condition_matches("StringLike", "s3:prefix", "openclaw/*", Request("x", "*", {}))


def test_s3_prefix_on_list_bucket():
    bucket = "arn:aws:s3:::backups"
    p = policy(allow("s3:ListBucket", bucket, {"StringLike": {"s3:prefix": ["openclaw/*"]}}))
    assert evaluate(p, Request("s3:ListBucket", bucket, {"s3:prefix": "openclaw/daily/"})).allowed
    assert not evaluate(p, Request("s3:ListBucket", bucket, {})).allowed
    assert not evaluate(p, Request("s3:ListBucket", bucket, {"s3:prefix": "secrets/"})).allowed


def test_request_tags_at_creation():
    c = {"StringEquals": {"aws:RequestTag/openclaw:managed-by": "openclaw-ops"}}
    p = policy(allow("ec2:CreateSnapshot", "arn:aws:ec2:us-east-1::snapshot/*", c))
    ok = Request("ec2:CreateSnapshot", "arn:aws:ec2:us-east-1::snapshot/*", {"aws:RequestTag/openclaw:managed-by": "openclaw-ops", "aws:TagKeys": ["openclaw:managed-by"]})
    assert evaluate(p, ok).allowed
    assert not evaluate(p, Request("ec2:CreateSnapshot", "arn:aws:ec2:us-east-1::snapshot/*", {})).allowed


def test_arn_like_matches_part_by_part():
    lt = "arn:aws:ec2:us-east-1:123456789012:launch-template/lt-1"
    assert condition_matches("ArnLike", "ec2:LaunchTemplate", "arn:aws:ec2:*:*:launch-template/lt-1", Request("x", "*", {"ec2:LaunchTemplate": lt}))
    assert not condition_matches("ArnLike", "ec2:LaunchTemplate", "arn:aws:ec2:us-east-1:123456789012:launch-template/lt-2", Request("x", "*", {"ec2:LaunchTemplate": lt}))
    assert condition_matches("ArnEquals", "ec2:LaunchTemplate", lt, Request("x", "*", {"ec2:LaunchTemplate": lt}))
    assert condition_matches("ArnNotLike", "ec2:LaunchTemplate", lt, Request("x", "*", {}))


def test_bool_and_numeric_and_date():
    assert condition_matches("Bool", "aws:SecureTransport", "false", Request("x", "*", {"aws:SecureTransport": "false"}))
    assert condition_matches("Bool", "aws:SecureTransport", False, Request("x", "*", {"aws:SecureTransport": "false"}))
    assert not condition_matches("Bool", "aws:SecureTransport", "false", Request("x", "*", {"aws:SecureTransport": "true"}))
    assert condition_matches("NumericLessThanEquals", "s3:max-keys", "10", Request("x", "*", {"s3:max-keys": "5"}))
    assert condition_matches("DateLessThan", "aws:CurrentTime", "2027-01-01T00:00:00Z", Request("x", "*", {"aws:CurrentTime": "2026-12-03T00:00:00Z"}))


def test_pass_role_to_one_service():
    role = "arn:aws:iam::123456789012:role/gateway"
    p = policy(allow("iam:PassRole", role, {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}))
    assert evaluate(p, Request("iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"})).allowed
    assert not evaluate(p, Request("iam:PassRole", "arn:aws:iam::123456789012:role/admin", {"iam:PassedToService": "ec2.amazonaws.com"})).allowed
    assert not evaluate(p, Request("iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"})).allowed


@pytest.mark.parametrize(
    "condition",
    [
        {"StringEqualsTypo": {"aws:ResourceTag/x": "y"}},
        {"StringEquals": {"aws:ResourceTags/x": "y"}},
        {"StringEquals": {"ec2:NoSuchKey": "y"}},
        {"StringEquals": {"aws:ResourceTag/x": "${aws:username}"}},
        {"NullIfExists": {"aws:ResourceTag/x": "true"}},
    ],
)
def test_anything_unknown_is_refused_never_allowed(condition):
    # even in a statement the request never reaches
    p = policy(allow("ec2:DescribeVolumes"), allow("ec2:DeleteSnapshot", "*", condition))
    with pytest.raises(Unsupported):
        evaluate(p, Request("ec2:DescribeVolumes", "*"))
