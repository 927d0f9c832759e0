"""The bed's IAM enforcement end to end, through a real emulator process: pre-signed URLs are
authenticated and evaluated like header-signed requests, and the decision log says why."""

import json
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

TESTBED = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bed():
    process = subprocess.Popen(
        [sys.executable, str(TESTBED / "emulator.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    ready = json.loads(process.stdout.readline())
    yield ready
    process.stdin.close()
    process.wait(timeout=10)


def client(bed, service, keys):
    return boto3.client(
        service,
        endpoint_url=bed["url"],
        region_name="us-east-1",
        aws_access_key_id=keys["access_key_id"],
        aws_secret_access_key=keys["secret_access_key"],
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


def user(bed, name, statements):
    iam = client(bed, "iam", bed["admin"])
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name, PolicyName="template", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements})
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def calls(bed):
    return json.loads(urllib.request.urlopen(bed["url"] + "/_testbed/calls").read())


def put(url, body=b"x", headers=None):
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers or {})
    try:
        return urllib.request.urlopen(request).status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.fixture(scope="module")
def bucket(bed):
    s3 = client(bed, "s3", bed["admin"])
    s3.create_bucket(Bucket="presigned")
    return "presigned"


def test_a_presigned_put_is_evaluated_under_the_signers_policy(bed, bucket):
    keys = user(
        bed,
        "writer",
        [{"Sid": "OnlyDaily", "Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/daily/*"}],
    )
    s3 = client(bed, "s3", keys)
    allowed = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "daily/a"}, ExpiresIn=60)
    denied = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "monthly/a"}, ExpiresIn=60)
    assert put(allowed) == 200
    assert put(denied) == 403
    log = [c for c in calls(bed) if c.get("presigned")]
    assert [c["allowed"] for c in log[-2:]] == [True, False]
    assert log[-2]["authorizations"][0]["statements"] == ["template/OnlyDaily"]
    assert log[-1]["authorizations"][0]["reason"].startswith("implicit deny")


def test_a_tampered_or_expired_url_is_refused(bed, bucket):
    keys = user(bed, "writer2", [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}])
    s3 = client(bed, "s3", keys)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "daily/b"}, ExpiresIn=60)
    assert put(url.replace("daily%2Fb", "daily%2Fc").replace("daily/b", "daily/c")) == 403
    expired = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "daily/b"}, ExpiresIn=1)
    set_clock(bed, "2099-01-01T00:00:00Z")
    try:
        assert put(expired) == 403
        assert calls(bed)[-1]["error"] == "AccessDenied: Request has expired"
    finally:
        set_clock(bed, datetime.now(timezone.utc).isoformat())


def set_clock(bed, now):
    request = urllib.request.Request(bed["url"] + "/_testbed/clock", data=json.dumps({"now": now}).encode(), method="POST")
    urllib.request.urlopen(request)


def test_a_signed_header_the_client_leaves_out_breaks_the_signature(bed, bucket):
    keys = user(bed, "writer3", [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}])
    s3 = client(bed, "s3", keys)
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "daily/once", "IfNoneMatch": "*"}, ExpiresIn=3600
    )
    assert "if-none-match" in url.lower()
    assert put(url) == 403  # signed, but not sent
    assert calls(bed)[-1]["error"].startswith("SignatureDoesNotMatch")
    assert put(url, headers={"If-None-Match": "*"}) == 200
