"""IAM enforced as AWS enforces it, in place of moto's check (which reads neither `Condition` nor,
outside S3, `Resource`).

`install()` replaces moto's authentication and authorization step for every service:

1. Authentication: SigV4 in the `Authorization` header (moto's own signature check, over the raw
   body), or SigV4 in the query string (pre-signed URLs: the signed headers, the signature and the
   expiry are checked here against the emulator's clock; moto reads credentials only from the header).
2. Authorization: `iam_requests` lists what AWS authorizes for the request (each action on each
   resource, implied ones included, with the request context); `iam_policy` evaluates each under the
   principal's identity policies (inline and attached, of the user and its groups). All must allow.
   A denial answers with the error shape of the service (`UnauthorizedOperation` for EC2,
   `AccessDenied` for S3, `AccessDeniedException` for JSON services, `AuthorizationError` for SNS).
3. A decision log: every request is written down with its principal, its authorizations and, for
   each, the statements that allowed it or why it was denied (`GET /_testbed/calls`). With
   `OPENCLAW_IAM_DECISIONS` naming a folder, each emulator process appends its decisions to a file
   of its own there (the test command's grant coverage check, `iam-coverage`, reads them all).
4. `POST /_testbed/iam/simulate {"policy", "requests": [{"action", "resource", "context"}]}` evaluates
   requests under a policy without making them (tests/tests/iam_probes.rs).

What the bed cannot evaluate (an unknown operator or key, an operation whose resources it was not
taught) is denied and logged with `error`; a principal that holds an unconditional `Allow * on *`
(the bed's own administrator, which seeds accounts) is allowed without the resource analysis.

Not evaluated: resource-based policies (bucket, topic, queue and key policies), SCPs, permission
boundaries and session policies; the README's test-bed table says why.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import threading
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, unquote, urlparse

import iam_policy
import iam_requests
from iam_policy import Unsupported

REGION_DEFAULT = "us-east-1"

_lock = threading.Lock()
_calls: list[dict] = []
# One file per emulator process, in the folder OPENCLAW_IAM_DECISIONS names (tests run in parallel).
_decisions_dir = os.environ.get("OPENCLAW_IAM_DECISIONS")
_decisions_file = os.path.join(_decisions_dir, f"{os.getpid()}.jsonl") if _decisions_dir else None


def simulate(body: dict) -> list[dict]:
    """Evaluates `body["requests"]` (action, resource, context) under `body["policy"]`, as the bed
    evaluates live requests: for tests that probe a template policy directly."""
    policies = [("template", body["policy"])]
    out = []
    for r in body["requests"]:
        try:
            d = iam_policy.evaluate(policies, iam_policy.Request(r["action"], r["resource"], r.get("context", {})))
            out.append({"allowed": d.allowed, "statements": d.statements, "reason": d.reason})
        except Unsupported as err:
            out.append({"allowed": False, "statements": [], "reason": f"test bed: {err}"})
    return out


def calls() -> list[dict]:
    with _lock:
        return list(_calls)


def clear() -> None:
    with _lock:
        _calls.clear()


def _record(entry: dict) -> None:
    with _lock:
        _calls.append(entry)
        if _decisions_file:
            os.makedirs(_decisions_dir, exist_ok=True)
            with open(_decisions_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")


# ---------------------------------------------------------------------------------------------
# The account's state, as the request extractor needs it


class State:
    def __init__(self, account_id: str, region: str):
        self.account_id = account_id
        self.region = region

    def _ec2(self):  # noqa: ANN202
        from moto.backends import get_backend

        return get_backend("ec2")[self.account_id][self.region]

    def in_region(self, region: str) -> "State":
        """The same account in another region (a cross-region request's source)."""
        return State(self.account_id, region)

    def ec2_tags(self, resource_id: str) -> dict:
        return dict(self._ec2().tags.get(resource_id, {}))

    def ec2_volume_instance(self, volume_id: str) -> str | None:
        volume = self._ec2().get_volume(volume_id)
        attachment = getattr(volume, "attachment", None)
        return attachment.instance.id if attachment else None

    def ec2_launch_template(self, reference: dict) -> dict:
        backend = self._ec2()
        if reference.get("LaunchTemplateId"):
            template = backend.get_launch_template(reference["LaunchTemplateId"])
        else:
            template = backend.get_launch_template_by_name(reference["LaunchTemplateName"])
        version = str(reference.get("Version") or "$Default")
        if version == "$Latest":
            chosen = template.latest_version()
        elif version == "$Default":
            chosen = template.default_version()
        else:
            chosen = template.get_version(int(version))
        arn = f"arn:aws:ec2:{self.region}:{self.account_id}:launch-template/{template.id}"
        return {"arn": arn, "data": chosen.data or {}}

    def ec2_default_subnet(self, zone: str | None) -> str | None:
        subnets = self._ec2().get_default_subnets()
        if zone and zone in subnets:
            return subnets[zone].id
        return next(iter(subnets.values())).id if subnets else None

    def ec2_default_security_group(self) -> str | None:
        group = self._ec2().get_default_security_group()
        return group.id if group else None

    def iam_role_of_instance_profile(self, reference: dict) -> str:
        from moto.iam.models import iam_backends

        backend = iam_backends[self.account_id]["aws"]
        try:
            if reference.get("Arn"):
                profile = backend.get_instance_profile_by_arn(reference["Arn"])
            else:
                profile = backend.get_instance_profile(reference["Name"])
        except Exception as err:  # noqa: BLE001 - moto's NotFound; EC2 refuses such a launch
            raise Unsupported(f"instance profile {reference} does not exist: {err}") from err
        if not profile.roles:
            raise Unsupported(f"instance profile {reference} has no role")
        return profile.roles[0].arn

    def secret_arn(self, secret_id: str) -> str:
        from moto.backends import get_backend

        store = get_backend("secretsmanager")[self.account_id][self.region].secrets
        secret = store.get(secret_id)
        if secret is None:
            # AWS authorizes a name it cannot find against a name-shaped ARN with a wildcard suffix
            return f"arn:aws:secretsmanager:{self.region}:{self.account_id}:secret:{secret_id}-??????"
        return secret.arn


# ---------------------------------------------------------------------------------------------
# Principals


def _policies_of_user(account_id: str, user_name: str) -> list[tuple[str, dict]]:
    from moto.iam.models import iam_backends

    backend = iam_backends[account_id]["aws"]
    out: list[tuple[str, dict]] = []
    user = backend.get_user(user_name)
    for name, document in user.policies.items():
        out.append((name, json.loads(document)))
    for policy in user.managed_policies.values():
        out.append((policy.name, json.loads(_default_document(policy))))
    for group in backend.get_groups_for_user(user_name):
        for name, document in group.policies.items():
            out.append((f"{group.name}/{name}", json.loads(document)))
        for policy in group.managed_policies.values():
            out.append((policy.name, json.loads(_default_document(policy))))
    return out


def _default_document(policy) -> str:  # noqa: ANN001
    return next(v.document for v in policy.versions if v.is_default)


def _is_administrator(policies: list[tuple[str, dict]]) -> bool:
    for _, document in policies:
        statements = document.get("Statement", [])
        for s in [statements] if isinstance(statements, dict) else statements:
            if (
                s.get("Effect") == "Allow"
                and s.get("Action") in ("*", ["*"])
                and s.get("Resource") in ("*", ["*"])
                and not s.get("Condition")
            ):
                return True
    return False


# ---------------------------------------------------------------------------------------------
# Authentication of pre-signed (query-string SigV4) requests


class PresignError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def verify_presigned(method: str, raw_path: str, query: str, headers: dict, now: datetime) -> tuple[str, str, str]:
    """Checks a query-string SigV4 request; answers (access key id, region, service)."""
    params = parse_qsl(query, keep_blank_values=True)
    values = dict(params)
    if values.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        raise PresignError("AuthorizationQueryParametersError", "X-Amz-Algorithm only supports AWS4-HMAC-SHA256")
    for name in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"):
        if name not in values:
            raise PresignError("AuthorizationQueryParametersError", f"Query-string authentication requires {name}")
    access_key_id, date, region, service, terminator = values["X-Amz-Credential"].split("/")
    if terminator != "aws4_request":
        raise PresignError("AuthorizationQueryParametersError", "credential scope must end in aws4_request")
    signed_at = datetime.strptime(values["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    expires = int(values["X-Amz-Expires"])
    if not 1 <= expires <= 604800:
        raise PresignError("AuthorizationQueryParametersError", "X-Amz-Expires must be between 1 and 604800 seconds")
    if now > signed_at + timedelta(seconds=expires):
        raise PresignError("AccessDenied", "Request has expired")
    if now < signed_at - timedelta(minutes=15):
        raise PresignError("AccessDenied", "Request is not valid yet")

    signed_headers = values["X-Amz-SignedHeaders"].split(";")
    lowered = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in signed_headers if h not in lowered]
    if missing:
        # the client left out a header it signed: the signature cannot match
        raise PresignError("SignatureDoesNotMatch", f"signed headers missing from the request: {', '.join(missing)}")
    canonical_headers = "".join(f"{h}:{' '.join(lowered[h].strip().split())}\n" for h in signed_headers)
    canonical_query = "&".join(
        f"{_uri(k)}={_uri(v)}" for k, v in sorted((k, v) for k, v in params if k != "X-Amz-Signature")
    )
    canonical_uri = quote(unquote(raw_path), safe="/~")
    canonical_request = "\n".join(
        [method, canonical_uri, canonical_query, canonical_headers, values["X-Amz-SignedHeaders"], "UNSIGNED-PAYLOAD"]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", values["X-Amz-Date"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    secret = _secret_of(access_key_id)
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, values["X-Amz-Signature"]):
        raise PresignError("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
    return access_key_id, region, service


def _uri(text: str) -> str:
    return quote(text, safe="-_.~")


def _secret_of(access_key_id: str) -> str:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends

    backend = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for user in backend.users.values():
        for key in user.access_keys:
            if key.access_key_id == access_key_id:
                return key.secret_access_key
    raise PresignError("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")


def _user_of(access_key_id: str) -> str:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends

    backend = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for user in backend.users.values():
        if any(k.access_key_id == access_key_id for k in user.access_keys):
            return user.name
    raise PresignError("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")


# ---------------------------------------------------------------------------------------------
# The replacement for moto's step


def _denied_error(service: str, principal_arn: str, action: str, resource: str, why: str):  # noqa: ANN202
    """The error AWS answers a denied request with, in the service's protocol."""
    from moto.core.exceptions import JsonRESTError, _RESTError

    message = f"User: {principal_arn} is not authorized to perform: {action} on resource: {resource} because {why}"
    if service == "s3":
        from moto.s3.exceptions import S3AccessDeniedError

        return S3AccessDeniedError()
    if service in ("ssm", "ce", "secretsmanager", "kms", "logs", "sqs"):
        return JsonRESTError("AccessDeniedException", message)
    if service == "ec2":
        error = _RESTError("UnauthorizedOperation", f"You are not authorized to perform this operation. {message}")
        from xmltodict import unparse

        error.description = unparse(
            {
                "Response": {
                    "Errors": {"Error": {"Code": "UnauthorizedOperation", "Message": error.message}},
                    "RequestID": "testbed-iam-denied",
                }
            },
            full_document=True,
        )
    else:
        error = _RESTError("AuthorizationError" if service == "sns" else "AccessDenied", message)
    error.code = 403
    return error


def _presign_error(code: str, message: str):  # noqa: ANN202
    """S3's answer to a pre-signed request it cannot authenticate (403, or 400 for a malformed one)."""
    from moto.core.exceptions import _RESTError
    from xmltodict import unparse

    error = _RESTError(code, message)
    error.description = unparse({"Error": {"Code": code, "Message": message}}, full_document=True)
    error.code = 400 if code == "AuthorizationQueryParametersError" else 403
    return error


def install() -> None:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    def _authenticate_and_authorize_action(self, iam_request_cls, resource: str = "*") -> None:  # noqa: ANN001
        if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
            ActionAuthenticatorMixin.request_count += 1
            return
        if self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
            return
        parsed_url = urlparse(self.uri)
        query = parsed_url.query
        presigned = "X-Amz-Signature=" in query and "Authorization" not in self.headers
        if presigned:
            from datetime import datetime as clock  # freezegun's, the emulator's own time

            try:
                access_key_id, region, signing_service = verify_presigned(
                    self.method, self.raw_path, query, dict(self.headers), clock.now(timezone.utc)
                )
                user_name = _user_of(access_key_id)
            except PresignError as err:
                _record({"access_key_id": "", "action": "s3:?", "allowed": False, "authorizations": [], "error": f"{err.code}: {err.message}"})
                raise _presign_error(err.code, err.message) from None
            account_id = self.current_account
        else:
            path = self.raw_path + ("?" + query if query else "")
            iam_request = iam_request_cls(
                account_id=self.current_account,
                method=self.method,
                path=path,
                data=self.data,
                body=self.raw_body,
                headers=self.headers,
                action=self._get_action(),
            )
            iam_request.check_signature()
            access_key_id = iam_request._access_key._access_key_id
            user_name = getattr(iam_request._access_key, "_owner_user_name", None)
            account_id = iam_request.account_id
            region = iam_request._region
            signing_service = iam_request._service
            if user_name is None:
                # an assumed role: moto's evaluation stands (no test uses one)
                iam_request.check_action_permitted(resource)
                return
        _authorize(self, account_id, region, signing_service, access_key_id, user_name, resource, presigned, query)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate_and_authorize_action


def _authorize(response, account_id, region, signing_service, access_key_id, user_name, resource, presigned, query) -> None:  # noqa: ANN001, PLR0913
    service = iam_requests.iam_prefix(signing_service)
    operation = response._get_action()
    operation = operation[0] if isinstance(operation, list) else operation
    principal_arn = f"arn:aws:iam::{account_id}:user/{user_name}"
    entry: dict = {
        "access_key_id": access_key_id,
        "principal": principal_arn,
        "action": f"{service}:{operation}",
        "presigned": presigned,
        "allowed": False,
        "authorizations": [],
        "error": None,
    }
    if f"{service}:{operation}" == "sts:GetCallerIdentity":
        entry["allowed"] = True
        _record(entry)
        return
    policies = _policies_of_user(account_id, user_name)
    try:
        if service == "s3":
            params: dict = {}
        elif _is_json(response):
            params = iam_requests.parse_json_body(response.body)
        else:
            params = iam_requests.nest(response.querystring)
        call = iam_requests.Call(
            service=service,
            operation=operation,
            region=region,
            params=params,
            headers=dict(response.headers),
            query={k: v for k, v in parse_qsl(query, keep_blank_values=True)},
            moto_resource=resource,
            path=urlparse(response.uri).path,
        )
        requests = (
            iam_requests.handler_for_s3()(call, None) if service == "s3" else iam_requests.authorizations(call, State(account_id, region))
        )
        if service == "s3" and requests:
            # moto files some subresources under the object's action (a retention is a PutObject to it)
            entry["action"] = requests[0].action
        base = _global_context(principal_arn, account_id, user_name, region)
        if service == "s3":
            base["s3:authType"] = "REST-QUERY-STRING" if presigned else "REST-HEADER"
            base["s3:signatureversion"] = "AWS4-HMAC-SHA256"
        denied = None
        for request in requests:
            request.context = {**base, **request.context}
            decision = iam_policy.evaluate(policies, request)
            entry["authorizations"].append(
                {
                    "action": request.action,
                    "resource": request.resource,
                    "context": request.context,
                    "allowed": decision.allowed,
                    "statements": decision.statements,
                    "reason": decision.reason,
                }
            )
            if not decision.allowed and denied is None:
                denied = (request, decision)
    except Unsupported as err:
        if _is_administrator(policies):
            entry["allowed"] = True
            entry["authorizations"] = []
            _record(entry)
            return
        entry["error"] = f"test bed: {err}"
        _record(entry)
        print(f"testbed IAM: {principal_arn} {service}:{operation}: {err}", file=sys.stderr, flush=True)
        raise _denied_error(service, principal_arn, f"{service}:{operation}", resource, f"the test bed cannot evaluate it ({err})") from None
    if denied is not None:
        _record(entry)
        request, decision = denied
        why = "of an explicit deny" if decision.reason == "explicit deny" else "no identity-based policy allows the action"
        raise _denied_error(service, principal_arn, request.action, request.resource, why)
    entry["allowed"] = True
    _record(entry)


def authorize_as(access_key_id: str, action: str, requests: list, region: str = REGION_DEFAULT) -> dict:
    """Authorizes and logs a call made without an HTTP exchange through moto (the SSM agent's, whose
    services have no public wire protocol: fake_ssm_agent.py) exactly as `_authorize` does a live
    one: the key's user, its policies, the global context under each request's own. Answers the
    decision log entry (`allowed`)."""
    from moto.core import DEFAULT_ACCOUNT_ID

    user_name = _user_of(access_key_id)
    principal_arn = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:user/{user_name}"
    entry: dict = {
        "access_key_id": access_key_id,
        "principal": principal_arn,
        "action": action,
        "presigned": False,
        "allowed": False,
        "authorizations": [],
        "error": None,
    }
    policies = _policies_of_user(DEFAULT_ACCOUNT_ID, user_name)
    base = _global_context(principal_arn, DEFAULT_ACCOUNT_ID, user_name, region)
    allowed = True
    for request in requests:
        request.context = {**base, **request.context}
        try:
            decision = iam_policy.evaluate(policies, request)
        except Unsupported as err:
            entry["error"] = f"test bed: {err}"
            allowed = False
            break
        entry["authorizations"].append(
            {
                "action": request.action,
                "resource": request.resource,
                "context": request.context,
                "allowed": decision.allowed,
                "statements": decision.statements,
                "reason": decision.reason,
            }
        )
        allowed = allowed and decision.allowed
    entry["allowed"] = allowed
    _record(entry)
    return entry


def _is_json(response) -> bool:  # noqa: ANN001
    content_type = (response.headers.get("Content-Type") or "").lower()
    return "json" in content_type or bool(response.headers.get("X-Amz-Target"))


def _global_context(principal_arn: str, account_id: str, user_name: str, region: str) -> dict:
    from datetime import datetime as clock

    now = clock.now(timezone.utc)
    context = {
        "aws:PrincipalArn": principal_arn,
        "aws:PrincipalAccount": account_id,
        "aws:PrincipalType": "User",
        "aws:username": user_name,
        "aws:RequestedRegion": region,
        # The SDKs reach AWS over TLS; the bed is plain HTTP on loopback.
        "aws:SecureTransport": "true",
        "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(now.timestamp())),
        "aws:ViaAWSService": "false",
    }
    return context
