"""The suite's local AWS: moto server plus the few things moto lacks for our tests.

Run it with the test bed's venv (testbed/setup.sh makes it):

    .venv/bin/python testbed/emulator.py [--port 0]

It prints one JSON line on stdout once it serves, then runs until killed or until stdin closes:

    {"url": "http://127.0.0.1:PORT", "region": "us-east-1",
     "admin": {"access_key_id": "...", "secret_access_key": "..."}}

What it adds to moto (everything here, nothing elsewhere):

* IAM is enforced from the start, as AWS evaluates it (testbed/iam_bed.py: conditions, resource ARNs,
  implied authorizations, pre-signed URLs). Before serving, it creates the IAM user `testbed-admin`
  with an allow-everything policy and prints its keys: tests seed the account with those and run each
  function as a user of their own holding the function's template statements.
* A movable clock: moto runs under freezegun (ticking), so `POST /_testbed/clock {"now": RFC3339}`
  makes every later timestamp moto writes (snapshot StartTime, object dates...) start from there.
  `GET /_testbed/clock` answers the emulator's current time.
* Signatures checked over the bytes the client sent. moto re-encodes a parsed form body before
  checking a SigV4 signature, which only matches botocore's own encoding; the Rust SDK encodes some
  characters differently (a space in a snapshot description, an SNS subject), so its requests would
  fail with AuthFailure. The raw body is kept per request and handed to the check.
* A decision log of every request (`GET /_testbed/calls`: principal, action, allowed, and each
  authorization with its resource, context and deciding statements), so a test can list what a
  principal used and prove that a bad input made no call. `DELETE` clears it.

* Cost Explorer as AWS answers it (never enabled, no data yet, request validation, paging, a
  record of the requests): `testbed/fake_ce.py`, its `/_testbed/ce/...` routes documented there.

* The behaviours AWS has and moto lacks, each in its own module with its docstring: bed time
  (bed_clock.py: `POST /_testbed/time-scale`, and the clock above), SSM Run Command run for real
  with AWS's errors and timings (fake_ssm.py: `POST /_testbed/ssm/instances`, `/_testbed/ssm/settings`),
  the SSM agent's own calls as the instance role (fake_ssm_agent.py), conditional S3 writes decided
  once under concurrency (s3_conditional_writes.py),
  the managed instances SSM lists (fake_ssm_instances.py: `DescribeInstanceInformation`),
  load balancer target health (fake_elbv2.py: `POST /_testbed/elbv2/target-health`), EC2 reclaiming
  a Spot instance, one attachment per volume and RunInstances idempotency (fake_ec2.py:
  `POST /_testbed/ec2/spot-interruption`, `/_testbed/ec2/settings`), a launch template's market
  applied to RunInstances (fake_launch_template.py). Their routes come through bed_routes.py.

* S3 default encryption checked under its IAM action names (`s3:GetEncryptionConfiguration`,
  `s3:PutEncryptionConfiguration`): moto's action map lacks `?encryption` and checks `s3:ListBucket`.
* EC2 `DescribeSnapshots` pages by `MaxResults`/`NextToken` as EC2 does (moto answers everything in
  one page), so a benchmark counts the pages a function really asks for.
* S3 `GetBucketVersioning` answered with the `VersioningConfiguration` root element AWS sends: moto
  5.2.5 serialises it as `GetBucketVersioningResponse`, which the Rust SDK refuses to parse.

* EC2 tags read by resource id: moto finds a resource's tags by scanning every tag in the account
  (per resource, per filter), so filtering 10,000 tagged snapshots takes minutes a page. Same answers,
  read from its per-resource tag table.
* Snapshots in bulk, for the benchmark's 10,000: `POST /_testbed/ec2/snapshots {"snapshots":
  [{"volume_id", "tags": {...}, "start_time": RFC3339}]}` makes them as CreateSnapshot would (one
  backend call each, no HTTP, signature or IAM round trip).

State is per process: every test starts its own emulator, so tests run in parallel without sharing
state or clocks.
"""

import argparse
import email.utils
import io
import os
import json
import sys
import threading
from datetime import datetime, timezone

import boto3
import freezegun
import freezegun.api
from werkzeug.serving import WSGIRequestHandler, make_server

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin

import iam_bed
from moto.iam.access_control import IAMRequestBase
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

import fake_ce
import bed_clock
import bed_routes
import fake_ebs_copy
import fake_ec2
import fake_launch_template
import fake_object_lock
import fake_elbv2
import fake_scheduler
import fake_ssm
import fake_ssm_agent
import s3_conditional_writes
import fake_ssm_instances

REGION = "us-east-1"

_request = threading.local()


def _sign_over_raw_bodies() -> None:
    original = IAMRequestBase.__init__

    def __init__(self, *args, **kwargs):  # noqa: ANN002, ANN003
        original(self, *args, **kwargs)
        raw = getattr(_request, "body", b"")
        if not self._body and raw:
            self._body = raw

    IAMRequestBase.__init__ = __init__


def _s3_versioning_as_aws_answers() -> None:
    from moto.s3.responses import S3Response

    def get_bucket_versioning(self):  # noqa: ANN001, ANN202
        status = self.backend.get_bucket_versioning(self.bucket_name)
        inner = f"<Status>{status}</Status>" if status else ""
        return 200, {}, (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</VersioningConfiguration>'
        )

    S3Response.get_bucket_versioning = get_bucket_versioning


def _paginate_snapshots() -> None:
    from moto.core.responses import ActionResult
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    original = ElasticBlockStore.describe_snapshots

    def describe_snapshots(self):  # noqa: ANN001, ANN202
        page_size = self._get_param("MaxResults")
        if not page_size:
            return original(self)
        snapshots = sorted(
            self.ec2_backend.describe_snapshots(
                snapshot_ids=self._get_param("SnapshotIds", []), filters=self._filters_from_querystring()
            ),
            key=lambda snapshot: snapshot.id,
        )
        start = int(self._get_param("NextToken") or 0)
        end = start + int(page_size)
        result = {"Snapshots": snapshots[start:end]}
        if end < len(snapshots):
            result["NextToken"] = str(end)
        return ActionResult(result)

    ElasticBlockStore.describe_snapshots = describe_snapshots


def _s3_encryption_actions() -> None:
    from moto.s3.responses import ACTION_MAP

    ACTION_MAP["BUCKET"]["GET"]["encryption"] = "GetEncryptionConfiguration"
    ACTION_MAP["BUCKET"]["PUT"]["encryption"] = "PutEncryptionConfiguration"
    ACTION_MAP["BUCKET"]["DELETE"]["encryption"] = "PutEncryptionConfiguration"


class Testbed:
    def __init__(self, app, freezer_factory):  # noqa: ANN001
        self._app = app
        self._clock = freezer_factory

    def __call__(self, environ, start_response):  # noqa: ANN001
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_testbed/"):
            # werkzeug serves each request on its own thread, where moto also checks its signature.
            length = int(environ.get("CONTENT_LENGTH") or 0)
            _request.body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(_request.body)
            return self._app(environ, start_response)
        try:
            status, body = self._route(environ["REQUEST_METHOD"], path, environ)
        except (ValueError, KeyError) as err:
            status, body = "400 Bad Request", {"error": str(err)}
        payload = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]

    def _route(self, method: str, path: str, environ) -> tuple[str, object]:  # noqa: ANN001
        if path == "/_testbed/clock" and method == "GET":
            return "200 OK", {"now": _now()}
        if path == "/_testbed/clock" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request = json.loads(environ["wsgi.input"].read(length) or b"{}")
            target = datetime.fromisoformat(request["now"].replace("Z", "+00:00"))
            if target.tzinfo is None:
                raise ValueError("now must carry a time zone (e.g. 2026-11-20T03:00:00Z)")
            self._clock.move_to(target.astimezone(timezone.utc).replace(tzinfo=None))
            return "200 OK", {"now": _now()}
        if path.startswith("/_testbed/ce/"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            return fake_ce.route(method, path, environ["wsgi.input"].read(length) if length else b"")
        if path == "/_testbed/ec2/snapshots" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            return "200 OK", _seed_snapshots(json.loads(environ["wsgi.input"].read(length) or b"{}")["snapshots"])
        if path == "/_testbed/iam/simulate" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            return "200 OK", iam_bed.simulate(json.loads(environ["wsgi.input"].read(length) or b"{}"))
        if path == "/_testbed/calls" and method == "GET":
            return "200 OK", iam_bed.calls()
        if path == "/_testbed/calls" and method == "DELETE":
            iam_bed.clear()
            return "200 OK", {}
        if (answer := bed_routes.dispatch(method, path, environ)) is not None:
            return answer
        return "404 Not Found", {"error": f"no testbed route {method} {path}"}


def _tags_by_resource_id() -> None:
    from moto.ec2.models.core import TaggedEC2Resource
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    def get_tags(self):  # noqa: ANN001, ANN202
        if not self.id:
            return []
        kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
        tags = self.ec2_backend.tags.get(self.id, {})
        return [{"resource_id": self.id, "key": k, "value": v, "resource_type": kind} for k, v in tags.items()]

    TaggedEC2Resource.get_tags = get_tags


def _seed_snapshots(snapshots: list[dict]) -> dict:
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID

    backend = get_backend("ec2")[DEFAULT_ACCOUNT_ID][REGION]
    for spec in snapshots:
        snapshot = backend.create_snapshot(spec["volume_id"], spec.get("description", ""))
        snapshot.start_time = datetime.fromisoformat(spec["start_time"].replace("Z", "+00:00")).replace(tzinfo=None)
        backend.create_tags([snapshot.id], spec.get("tags", {}))
    return {"created": len(snapshots)}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _create_admin(url: str) -> dict:
    iam = boto3.client(
        "iam", endpoint_url=url, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    iam.create_user(UserName="testbed-admin")
    iam.put_user_policy(
        UserName="testbed-admin",
        PolicyName="everything",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(UserName="testbed-admin")["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def _enforce_iam() -> None:
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0


class QuietHandler(WSGIRequestHandler):
    """No access log: tests read the emulator's stderr only when something broke.

    The `Date` header is the wall clock, not the movable clock: AWS's clock agrees with a client's,
    and the SDK reads `Date` to detect clock skew. A moved clock in that header looks like a skewed
    client, and the SDK then retries errors such as `AccessDeniedException` that AWS would answer once.
    """

    def log_request(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        return email.utils.formatdate(freezegun.api.real_time() if timestamp is None else timestamp, usegmt=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()

    freezer = freezegun.freeze_time(datetime.now(timezone.utc).replace(tzinfo=None), tick=True)
    clock = freezer.start()
    iam_bed.install()
    _sign_over_raw_bodies()
    fake_ce.install()
    bed_clock.install(clock)
    fake_ssm.install()
    fake_ssm_agent.install()
    fake_ssm_instances.install()
    fake_elbv2.install()
    fake_scheduler.install()
    fake_ec2.install()
    fake_launch_template.install()
    fake_ebs_copy.install()
    fake_object_lock.install()
    s3_conditional_writes.install()
    _s3_versioning_as_aws_answers()
    _s3_encryption_actions()
    _paginate_snapshots()
    _tags_by_resource_id()

    app = Testbed(DomainDispatcherApplication(create_backend_app), clock)
    server = make_server("127.0.0.1", args.port, app, threaded=True, request_handler=QuietHandler)
    url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()

    admin = _create_admin(url)
    _enforce_iam()
    iam_bed.clear()

    print(json.dumps({"url": url, "region": REGION, "admin": admin}), flush=True)
    # The parent owns our lifetime: when it goes away (stdin closes), so do we.
    for _ in sys.stdin:
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
