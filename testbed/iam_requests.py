"""What one AWS request asks IAM for: its authorizations (action, resource ARN, request context), as
the Service Authorization Reference lists them for each action the suite and its tests' principals
use.

`authorizations(service, operation, params, moto_resource, backends)` returns every authorization AWS
makes for the request, implied ones included:

* a create call with tag specifications (`RunInstances`, `CreateSnapshot`, `CreateVolume`) is also
  authorized as `ec2:CreateTags` on each tagged resource, with `ec2:CreateAction` set to the call;
  a launch template's own tag specifications count as the request's;
* `RunInstances` with an instance profile (in the request or its launch template) is also authorized
  as `iam:PassRole` on the profile's role, with `iam:PassedToService = ec2.amazonaws.com`;
* S3 `CopyObject` is `s3:PutObject` on the target and `s3:GetObject` on the source;
* Scheduler `CreateSchedule` is on the schedule's ARN in its group (the name is in the URL's path),
  and also `iam:PassRole` on the target's role with `iam:PassedToService = scheduler.amazonaws.com`.

Resources that do not exist yet (the snapshot `CreateSnapshot` makes, the instance `RunInstances`
launches) are authorized as `.../snapshot/*`, `.../instance/*`, as AWS does. Resource tags are read
from the emulator's state at the time of the call (`aws:ResourceTag/*`, `ec2:ResourceTag/*`,
`ssm:resourceTag/*`).

An operation this module does not know raises `iam_policy.Unsupported`: the bed refuses to guess
the resources of a call it has not been taught.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from iam_policy import Request, Unsupported

ACCOUNT = "123456789012"


@dataclass
class Call:
    """One request as the bed sees it."""

    service: str  # IAM prefix: ec2, s3, ssm, cloudwatch...
    operation: str  # the API operation (S3: the IAM action moto derived)
    region: str
    params: dict  # nested request parameters (query or JSON), or {} for S3
    headers: dict
    query: dict  # S3: the URL's query string, one value per key
    moto_resource: str  # S3: moto's bucket or object ARN
    path: str = ""  # the URL's path (REST APIs name the resource there: Scheduler's schedule)


def authorizations(call: Call, state) -> list[Request]:  # noqa: ANN001
    """Every authorization the call needs. `state` answers questions about the account (tags...)."""
    handler = _HANDLERS.get(f"{call.service}:{call.operation}")
    if handler is None:
        if call.service in _NO_RESOURCE_SERVICES or call.operation.startswith(("Describe", "List")) and call.service in (
            "ec2",
            "elasticloadbalancing",
        ):
            return [Request(f"{call.service}:{call.operation}", "*")]
        raise Unsupported(f"the test bed does not know the resources of {call.service}:{call.operation}")
    return handler(call, state)


# Services (or operations) without resource-level permissions: authorized against "*".
_NO_RESOURCE_SERVICES = {"ce"}


# ---------------------------------------------------------------------------------------------
# Request parameters


def nest(flat: dict) -> dict:
    """`{"TagSpecification.1.Tag.2.Key": ["k"]}` (EC2/ELB/SNS query form) as nested dicts and lists."""
    root: dict = {}
    for name, value in flat.items():
        value = value[0] if isinstance(value, list) and len(value) == 1 else value
        parts = name.split(".")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node):  # noqa: ANN001, ANN202
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        # "member" wrappers (SNS, ELB) hold the list itself
        if set(node) == {"member"}:
            return _lists(node["member"])
        return {k: _lists(v) for k, v in node.items()}
    return node


def _list(value) -> list:  # noqa: ANN001
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _get(params: dict, *names: str):  # noqa: ANN202
    """The first of several spellings (query `TagSpecification` vs JSON `TagSpecifications`)."""
    for name in names:
        if name in params:
            return params[name]
    return None


# ---------------------------------------------------------------------------------------------
# ARNs


def ec2_arn(region: str, resource_id: str) -> str:
    kind = {
        "i-": "instance",
        "vol-": "volume",
        "snap-": "snapshot",
        "ami-": "image",
        "subnet-": "subnet",
        "sg-": "security-group",
        "eni-": "network-interface",
        "lt-": "launch-template",
        "eipalloc-": "elastic-ip",
        "vpc-": "vpc",
        "sir-": "spot-instances-request",
    }
    for prefix, name in kind.items():
        if resource_id.startswith(prefix):
            # snapshots and images are regional resources without an account in their ARN
            account = "" if name in ("snapshot", "image") else ACCOUNT
            return f"arn:aws:ec2:{region}:{account}:{name}/{resource_id}"
    raise Unsupported(f"no ARN known for the EC2 resource id {resource_id!r}")


def _new(region: str, kind: str) -> str:
    account = "" if kind in ("snapshot", "image") else ACCOUNT
    return f"arn:aws:ec2:{region}:{account}:{kind}/*"


def _tag_context(tags: dict, prefixes=("aws:ResourceTag/", "ec2:ResourceTag/")) -> dict:  # noqa: ANN001
    return {f"{p}{k}": v for k, v in tags.items() for p in prefixes}


def _request_tags(specs, resource_type: str) -> dict:  # noqa: ANN001
    tags: dict = {}
    for spec in _list(specs):
        if spec.get("ResourceType") == resource_type:
            for tag in _list(_get(spec, "Tag", "Tags")):
                tags[tag.get("Key")] = tag.get("Value", "")
    return tags


def _request_tag_context(tags: dict) -> dict:
    context: dict = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    context["aws:TagKeys"] = list(tags)
    return context


# ---------------------------------------------------------------------------------------------
# EC2


def _ec2_resource(call: Call, state, resource_id: str) -> Request:  # noqa: ANN001
    return Request("", ec2_arn(call.region, resource_id), _tag_context(state.ec2_tags(resource_id)))


def _with_action(action: str, requests: list[Request]) -> list[Request]:
    for r in requests:
        r.action = action
    return requests


def _create_tags_on_create(call: Call, specs, kinds: list[str], extra: dict | None = None) -> list[Request]:  # noqa: ANN001
    out = []
    for kind in kinds:
        tags = _request_tags(specs, kind)
        if tags:
            context = {**_request_tag_context(tags), "ec2:CreateAction": call.operation, **(extra or {})}
            out.append(Request("ec2:CreateTags", _new(call.region, kind), context))
    return out


def _ec2_create_snapshot(call: Call, state) -> list[Request]:  # noqa: ANN001
    specs = _get(call.params, "TagSpecification", "TagSpecifications")
    tags = _request_tags(specs, "snapshot")
    volume = _ec2_resource(call, state, call.params["VolumeId"])
    snapshot = Request("", _new(call.region, "snapshot"), _request_tag_context(tags))
    return _with_action("ec2:CreateSnapshot", [volume, snapshot]) + _create_tags_on_create(call, specs, ["snapshot"])


def _ec2_copy_snapshot(call: Call, state) -> list[Request]:  # noqa: ANN001
    """Sent to the destination region: `ec2:CopySnapshot` on the new snapshot there (the request's
    tags) and on the source snapshot in `SourceRegion` (its own tags), and `ec2:CreateTags` on the new
    snapshot with `ec2:CreateAction=CopySnapshot` for its tag specifications. `aws:RequestedRegion`
    is the destination for all of them (the endpoint the request went to)."""
    specs = _get(call.params, "TagSpecification", "TagSpecifications")
    source_region = call.params.get("SourceRegion") or call.region
    source_id = call.params["SourceSnapshotId"]
    source_tags = state.in_region(source_region).ec2_tags(source_id)
    new = Request("ec2:CopySnapshot", _new(call.region, "snapshot"), _request_tag_context(_request_tags(specs, "snapshot")))
    source = Request("ec2:CopySnapshot", ec2_arn(source_region, source_id), _tag_context(source_tags))
    return [new, source] + _create_tags_on_create(call, specs, ["snapshot"])


def _ec2_delete_snapshot(call: Call, state) -> list[Request]:  # noqa: ANN001
    return _with_action("ec2:DeleteSnapshot", [_ec2_resource(call, state, call.params["SnapshotId"])])


def _ec2_create_tags(call: Call, state) -> list[Request]:  # noqa: ANN001
    tags = {t.get("Key"): t.get("Value", "") for t in _list(_get(call.params, "Tag", "Tags"))}
    out = []
    for resource_id in _list(_get(call.params, "ResourceId", "Resources")):
        r = _ec2_resource(call, state, resource_id)
        r.context.update(_request_tag_context(tags))
        out.append(r)
    return _with_action("ec2:CreateTags", out)


def _ec2_delete_tags(call: Call, state) -> list[Request]:  # noqa: ANN001
    keys = [t.get("Key") for t in _list(_get(call.params, "Tag", "Tags"))]
    out = []
    for resource_id in _list(_get(call.params, "ResourceId", "Resources")):
        r = _ec2_resource(call, state, resource_id)
        r.context["aws:TagKeys"] = keys
        out.append(r)
    return _with_action("ec2:DeleteTags", out)


def _ec2_attach_volume(call: Call, state) -> list[Request]:  # noqa: ANN001
    ids = [call.params["InstanceId"], call.params["VolumeId"]]
    return _with_action("ec2:AttachVolume", [_ec2_resource(call, state, i) for i in ids])


def _ec2_detach_volume(call: Call, state) -> list[Request]:  # noqa: ANN001
    volume = call.params["VolumeId"]
    instance = call.params.get("InstanceId") or state.ec2_volume_instance(volume)
    ids = ([instance] if instance else []) + [volume]
    return _with_action("ec2:DetachVolume", [_ec2_resource(call, state, i) for i in ids])


def _ec2_create_volume(call: Call, state) -> list[Request]:  # noqa: ANN001
    specs = _get(call.params, "TagSpecification", "TagSpecifications")
    out = [Request("ec2:CreateVolume", _new(call.region, "volume"), _request_tag_context(_request_tags(specs, "volume")))]
    if call.params.get("SnapshotId"):
        out += _with_action("ec2:CreateVolume", [_ec2_resource(call, state, call.params["SnapshotId"])])
    return out + _create_tags_on_create(call, specs, ["volume"])


def _ec2_associate_address(call: Call, state) -> list[Request]:  # noqa: ANN001
    ids = [i for i in (call.params.get("AllocationId"), call.params.get("InstanceId"), call.params.get("NetworkInterfaceId")) if i]
    return _with_action("ec2:AssociateAddress", [_ec2_resource(call, state, i) for i in ids])


def _ec2_terminate_or_stop(action: str):  # noqa: ANN202
    def handler(call: Call, state) -> list[Request]:  # noqa: ANN001
        ids = _list(_get(call.params, "InstanceId", "InstanceIds"))
        return _with_action(action, [_ec2_resource(call, state, i) for i in ids])

    return handler


def _ec2_run_instances(call: Call, state) -> list[Request]:  # noqa: ANN001
    """RunInstances as the Service Authorization Reference lists it: the instance, and the image,
    subnet, network interface, security groups, volumes, key pair, launch template and Spot request
    it uses, each with `ec2:LaunchTemplate` / `ec2:IsLaunchTemplateResource` when launched from a
    template; tags on create and PassRole implied."""
    p = call.params
    region = call.region
    template_ref = p.get("LaunchTemplate") or {}
    template = state.ec2_launch_template(template_ref) if template_ref else None
    data = template["data"] if template else {}

    def from_template(*names: str):  # noqa: ANN202
        request_value = _get(p, *names)
        if request_value not in (None, [], {}):
            return request_value, False
        template_value = _get(data, *names)
        return template_value, template_value not in (None, [], {})

    common: dict = {}
    if template:
        common["ec2:LaunchTemplate"] = template["arn"]

    def resource(arn: str, from_lt: bool, context: dict | None = None) -> Request:
        ctx = dict(common)
        if template:
            ctx["ec2:IsLaunchTemplateResource"] = "true" if from_lt else "false"
        ctx.update(context or {})
        return Request("ec2:RunInstances", arn, ctx)

    # Tags: the launch template's, then the request's over them (EC2 merges request tags over the
    # template's for the same key).
    specs = list(_list(_get(data, "TagSpecifications", "TagSpecification"))) + list(
        _list(_get(p, "TagSpecification", "TagSpecifications"))
    )
    instance_tags = _request_tags(specs, "instance")
    market, market_from_lt = from_template("InstanceMarketOptions")
    market_type = (market or {}).get("MarketType")
    instance_type, _ = from_template("InstanceType")
    out = [
        resource(
            _new(region, "instance"),
            False,
            {
                **_request_tag_context(instance_tags),
                **({"ec2:InstanceMarketType": market_type} if market_type else {"ec2:InstanceMarketType": "on-demand"}),
                **({"ec2:InstanceType": instance_type} if instance_type else {}),
            },
        )
    ]

    image, image_from_lt = from_template("ImageId")
    if image:
        out.append(resource(ec2_arn(region, image), image_from_lt, _tag_context(state.ec2_tags(image))))

    interfaces, interfaces_from_lt = from_template("NetworkInterface", "NetworkInterfaces")
    subnet, subnet_from_lt = from_template("SubnetId")
    if not subnet and interfaces:
        subnet = _list(interfaces)[0].get("SubnetId")
        subnet_from_lt = interfaces_from_lt
    if not subnet:
        subnet = state.ec2_default_subnet(_get(p.get("Placement") or {}, "AvailabilityZone"))
    if subnet:
        out.append(resource(ec2_arn(region, subnet), subnet_from_lt, _tag_context(state.ec2_tags(subnet))))
    out.append(resource(_new(region, "network-interface"), interfaces_from_lt))

    groups, groups_from_lt = from_template("SecurityGroupId", "SecurityGroupIds")
    if not groups and interfaces:
        groups = _list(interfaces)[0].get("SecurityGroupId") or _list(interfaces)[0].get("Groups")
        groups_from_lt = interfaces_from_lt
    for group in _list(groups) or [state.ec2_default_security_group()]:
        if group:
            out.append(resource(ec2_arn(region, group), groups_from_lt, _tag_context(state.ec2_tags(group))))

    out.append(resource(_new(region, "volume"), False, _request_tag_context(_request_tags(specs, "volume"))))
    key, key_from_lt = from_template("KeyName")
    if key:
        out.append(resource(f"arn:aws:ec2:{region}:{ACCOUNT}:key-pair/{key}", key_from_lt))
    if template:
        out.append(resource(template["arn"], True))
    if market_type == "spot":
        out.append(resource(_new(region, "spot-instances-request"), market_from_lt, _request_tag_context(_request_tags(specs, "spot-instances-request"))))

    out += _create_tags_on_create(call, specs, ["instance", "volume", "network-interface", "spot-instances-request"], common)

    profile, _ = from_template("IamInstanceProfile")
    if profile:
        role = state.iam_role_of_instance_profile(profile)
        out.append(Request("iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"}))
    return out


# ---------------------------------------------------------------------------------------------
# Other services


def _elb_target_group(action: str):  # noqa: ANN202
    def handler(call: Call, state) -> list[Request]:  # noqa: ANN001
        return [Request(action, call.params["TargetGroupArn"])]

    return handler


def _ssm_send_command(call: Call, state) -> list[Request]:  # noqa: ANN001
    document = call.params["DocumentName"]
    if document.startswith("arn:"):
        document_arn = document
    elif document.startswith("AWS-"):
        document_arn = f"arn:aws:ssm:{call.region}::document/{document}"
    else:
        document_arn = f"arn:aws:ssm:{call.region}:{ACCOUNT}:document/{document}"
    out = [Request("ssm:SendCommand", document_arn)]
    if call.params.get("Targets"):
        raise Unsupported("ssm:SendCommand with Targets (the suite names instances)")
    for instance in _list(call.params.get("InstanceIds")):
        tags = state.ec2_tags(instance)
        out.append(Request("ssm:SendCommand", ec2_arn(call.region, instance), _tag_context(tags, ("ssm:resourceTag/", "aws:ResourceTag/"))))
    return out


def _ssm_parameter(action: str, field: str):  # noqa: ANN202
    """GetParameter(s): each named parameter's ARN (a leading `/` is not repeated after `parameter`)."""

    def handler(call: Call, state) -> list[Request]:  # noqa: ANN001
        names = _list(call.params.get(field))
        return [Request(action, f"arn:aws:ssm:{call.region}:{ACCOUNT}:parameter/{n.lstrip('/')}") for n in names]

    return handler


def _scheduler_create_schedule(call: Call, state) -> list[Request]:  # noqa: ANN001
    name = unquote(call.path.rstrip("/").rsplit("/", 1)[-1])
    if not name or name == "schedules":
        raise Unsupported("scheduler:CreateSchedule without a schedule name in the path")
    group = call.params.get("GroupName") or "default"
    out = [Request("scheduler:CreateSchedule", f"arn:aws:scheduler:{call.region}:{ACCOUNT}:schedule/{group}/{name}")]
    role = (call.params.get("Target") or {}).get("RoleArn")
    if role:
        out.append(Request("iam:PassRole", role, {"iam:PassedToService": "scheduler.amazonaws.com"}))
    return out


def _star(action: str):  # noqa: ANN202
    return lambda call, state: [Request(action, "*")]


def _sns_publish(call: Call, state) -> list[Request]:  # noqa: ANN001
    topic = call.params.get("TopicArn") or call.params.get("TargetArn")
    if not topic:
        raise Unsupported("sns:Publish without TopicArn (SMS)")
    return [Request("sns:Publish", topic)]


def _sqs_queue(action: str):  # noqa: ANN202
    def handler(call: Call, state) -> list[Request]:  # noqa: ANN001
        url = call.params.get("QueueUrl") or ""
        name = urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]
        return [Request(action, f"arn:aws:sqs:{call.region}:{ACCOUNT}:{name}")]

    return handler


def _secret(action: str):  # noqa: ANN202
    def handler(call: Call, state) -> list[Request]:  # noqa: ANN001
        return [Request(action, state.secret_arn(call.params["SecretId"]))]

    return handler


def _cloudwatch_alarm(action: str):  # noqa: ANN202
    def handler(call: Call, state) -> list[Request]:  # noqa: ANN001
        names = _list(call.params.get("AlarmName")) + _list(call.params.get("AlarmNames"))
        if not names:
            return [Request(action, f"arn:aws:cloudwatch:{call.region}:{ACCOUNT}:alarm:*")]
        return [Request(action, f"arn:aws:cloudwatch:{call.region}:{ACCOUNT}:alarm:{n}") for n in names]

    return handler


# moto names a request by its method and first query key; these subresources are IAM actions of their
# own on AWS (moto files them under the object's default action).
_S3_SUBRESOURCES = {
    ("PutObject", "retention"): "PutObjectRetention",
    ("GetObject", "retention"): "GetObjectRetention",
    ("GetObjectVersion", "retention"): "GetObjectRetention",
    ("PutObject", "legal-hold"): "PutObjectLegalHold",
    ("GetObject", "legal-hold"): "GetObjectLegalHold",
    ("GetObjectVersion", "legal-hold"): "GetObjectLegalHold",
}


def _s3(call: Call, state) -> list[Request]:  # noqa: ANN001
    operation = call.operation
    for (moto_operation, subresource), iam_operation in _S3_SUBRESOURCES.items():
        if operation == moto_operation and subresource in call.query:
            operation = iam_operation
            break
    call = Call(**{**call.__dict__, "operation": operation})
    action = f"s3:{call.operation}"
    context: dict = {}
    if call.operation == "ListBucket":
        for name in ("prefix", "delimiter", "max-keys"):
            if name in call.query:
                context[f"s3:{name}"] = call.query[name]
    if call.operation == "PutObject":
        for header, key in (
            ("x-amz-server-side-encryption", "s3:x-amz-server-side-encryption"),
            ("x-amz-server-side-encryption-aws-kms-key-id", "s3:x-amz-server-side-encryption-aws-kms-key-id"),
            ("if-none-match", "s3:if-none-match"),
        ):
            value = _header(call.headers, header)
            if value is not None:
                context[key] = value
    if "versionId" in call.query:
        context["s3:versionid"] = call.query["versionId"]
    out = [Request(action, call.moto_resource, context)]
    # Overriding or removing governance-mode retention (a delete or a retention change that says so)
    # needs a permission of its own, as AWS authorizes it.
    bypass = (_header(call.headers, "x-amz-bypass-governance-retention") or "").lower() == "true"
    if bypass and call.operation in ("DeleteObject", "DeleteObjectVersion", "PutObjectRetention", "DeleteObjects"):
        out.append(Request("s3:BypassGovernanceRetention", call.moto_resource, dict(context)))
    source = _header(call.headers, "x-amz-copy-source")
    if call.operation == "PutObject" and source:
        source = unquote(source.split("?", 1)[0]).lstrip("/")
        out.append(Request("s3:GetObject", f"arn:aws:s3:::{source}"))
    return out


def _header(headers: dict, name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


_HANDLERS = {
    "ec2:CreateSnapshot": _ec2_create_snapshot,
    "ec2:DeleteSnapshot": _ec2_delete_snapshot,
    "ec2:CopySnapshot": _ec2_copy_snapshot,
    "ec2:CreateTags": _ec2_create_tags,
    "ec2:DeleteTags": _ec2_delete_tags,
    "ec2:AttachVolume": _ec2_attach_volume,
    "ec2:DetachVolume": _ec2_detach_volume,
    "ec2:CreateVolume": _ec2_create_volume,
    "ec2:AssociateAddress": _ec2_associate_address,
    "ec2:RunInstances": _ec2_run_instances,
    "ec2:TerminateInstances": _ec2_terminate_or_stop("ec2:TerminateInstances"),
    "ec2:StopInstances": _ec2_terminate_or_stop("ec2:StopInstances"),
    "ec2:StartInstances": _ec2_terminate_or_stop("ec2:StartInstances"),
    "elasticloadbalancing:RegisterTargets": _elb_target_group("elasticloadbalancing:RegisterTargets"),
    "elasticloadbalancing:DeregisterTargets": _elb_target_group("elasticloadbalancing:DeregisterTargets"),
    "ssm:SendCommand": _ssm_send_command,
    "ssm:GetCommandInvocation": _star("ssm:GetCommandInvocation"),
    "ssm:ListCommandInvocations": _star("ssm:ListCommandInvocations"),
    "ssm:ListCommands": _star("ssm:ListCommands"),
    "ssm:CancelCommand": _star("ssm:CancelCommand"),
    "ssm:GetParameter": _ssm_parameter("ssm:GetParameter", "Name"),
    "ssm:GetParameters": _ssm_parameter("ssm:GetParameters", "Names"),
    # No resource-level permissions: the Service Authorization Reference lists "*" only.
    "ssm:DescribeInstanceInformation": _star("ssm:DescribeInstanceInformation"),
    "sns:Publish": _sns_publish,
    "sqs:SendMessage": _sqs_queue("sqs:SendMessage"),
    "sqs:ReceiveMessage": _sqs_queue("sqs:ReceiveMessage"),
    "sqs:DeleteMessage": _sqs_queue("sqs:DeleteMessage"),
    "secretsmanager:GetSecretValue": _secret("secretsmanager:GetSecretValue"),
    "cloudwatch:DescribeAlarms": _cloudwatch_alarm("cloudwatch:DescribeAlarms"),
    "cloudwatch:PutMetricAlarm": _cloudwatch_alarm("cloudwatch:PutMetricAlarm"),
    "sts:GetCallerIdentity": _star("sts:GetCallerIdentity"),
    "scheduler:CreateSchedule": _scheduler_create_schedule,
}


def handler_for_s3() -> object:
    return _s3


def parse_json_body(body: bytes | str) -> dict:
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


_SERVICE_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}


def iam_prefix(signing_service: str) -> str:
    """The IAM action prefix of a SigV4 signing name (CloudWatch signs as `monitoring`)."""
    return _SERVICE_PREFIX.get(signing_service, signing_service)


def split_camel(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
