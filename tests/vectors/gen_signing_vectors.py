#!/usr/bin/env python3
"""Writes signing.json: requests signed by the vendors' own SDKs at a frozen
clock, which the signers in src/store/sign must reproduce byte for byte.

    pip install botocore oss2 alibabacloud-oss-v2
    python3 tests/vectors/gen_signing_vectors.py

Each scheme is signed by one SDK and, where a second SDK signs it the same
way, checked against that one too before anything is written:
  s3_v4   botocore's S3SigV4Auth
  oss_v4  alibabacloud-oss-v2's SignerV4, cross-checked with oss2's AuthV4
  oss_v1  oss2's Auth / StsAuth, cross-checked with alibabacloud-oss-v2's
          SignerV1 when there is no session token (that signer sends the
          token as an unsigned `security-token` header, oss2 as the signed
          `x-oss-security-token`; the Rust signer follows oss2).

Only the SDKs' signing code is used, not their clients, so the wire path and
query are ours: the key is percent-encoded with `/` kept and the query with
RFC 3986 (everything but A-Z a-z 0-9 - _ . ~), the way ferry sends them.
"""

import calendar
import datetime
import email.utils
import hashlib
import json
import os
import re
import sys
from urllib.parse import quote

import botocore
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import oss2
import oss2.auth
import oss2.http
import oss2.utils
import alibabacloud_oss_v2
from alibabacloud_oss_v2.signer.v1 import SignerV1
from alibabacloud_oss_v2.signer.v4 import SignerV4
from alibabacloud_oss_v2.types import Credentials as OssCredentials
from alibabacloud_oss_v2.types import HttpRequest, SigningContext

# A single-digit day and hour catch a missing zero pad in either date form.
NOW = datetime.datetime(2025, 3, 7, 8, 9, 10, tzinfo=datetime.timezone.utc)
NOW_UNIX = calendar.timegm(NOW.timetuple())

AK = "FERRYEXAMPLEAKID0001"
# `/`, `+` and `=` are in real secrets and must survive every key derivation.
SECRET = "fErRy/ExAmPlE+sEcReT=kEy0123456789abcdefg"
TOKEN = (
    "FQoGZXIvYXdzEXAMPLE//////////wEaDEXAMPLEtokenWith+slash/and=padding"
    "CAESJAExampleSessionToken0123456789=="
)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def enc(s, keep_slash):
    return quote(s, safe="/~" if keep_slash else "~")


def wire_query(pairs):
    return "&".join(f"{enc(k, False)}={enc(v, False)}" for k, v in pairs)


# --- freezing the SDKs' clocks ------------------------------------------------

botocore.auth.get_current_datetime = lambda remove_tzinfo=True: (
    NOW.replace(tzinfo=None) if remove_tzinfo else NOW
)


class _FrozenDatetime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return NOW.replace(tzinfo=None)

    @classmethod
    def now(cls, tz=None):
        return NOW if tz is not None else NOW.replace(tzinfo=None)


oss2.auth.datetime = _FrozenDatetime  # AuthV4 calls datetime.utcnow()
oss2.utils.http_date = lambda timeval=None: email.utils.formatdate(
    NOW_UNIX if timeval is None else timeval, usegmt=True
)  # Auth (V1) calls utils.http_date()


# --- the requests ---------------------------------------------------------------

BUCKET = "ferry-test-bucket"
# Spaces, non-ASCII, reserved characters and a literal `%`: every rule for
# encoding a key (or, in OSS V1, not encoding it) is exercised.
ODD_KEY = "dir one/naïve café+plus~tilde (1)&x=y;$@!'*,100%.txt"
UNICODE_PREFIX = "photos/2024 summer/ünïcødé+plus~tilde/"
CONT_TOKEN = "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4v+bOwM="
UPLOAD_ID = "0004B9894A22E5B1888A1E29F8236E2D"
CONTENT_MD5 = "1B2M2Y8AsgTpgAmY7PhCfg=="
DELETE_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>'
    b"<Object><Key>a.txt</Key></Object></Delete>"
)
PUT_BODY = b"hello from ferry\n"
COMPLETE_BODY = (
    b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
    b'<ETag>"etag"</ETag></Part></CompleteMultipartUpload>'
)


def requests_for(vendor):
    """(name, method, bucket, key, query pairs, headers, body) in the
    vendor's header dialect (`x-amz-` or `x-oss-`)."""
    meta = f"x-{vendor}-meta-"
    copy_source = f"x-{vendor}-copy-source"
    reqs = [
        ("get-object", "GET", BUCKET, "docs/readme.txt", [], [], b""),
        ("head-object", "HEAD", BUCKET, "docs/readme.txt", [], [], b""),
        (
            "put-object-meta-md5-type",
            "PUT",
            BUCKET,
            "docs/readme.txt",
            [],
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-MD5", CONTENT_MD5),
                ("Content-Length", str(len(PUT_BODY))),
                (meta + "mtime", "1741334950.123456789"),
                (meta + "Mode", "0644"),
            ],
            PUT_BODY,
        ),
        (
            "get-object-range",
            "GET",
            BUCKET,
            "big/file.bin",
            [],
            [("Range", "bytes=1048576-2097151")],
            b"",
        ),
        (
            "list-objects-v2",
            "GET",
            BUCKET,
            None,
            [
                ("list-type", "2"),
                ("prefix", UNICODE_PREFIX),
                ("delimiter", "/"),
                ("continuation-token", CONT_TOKEN),
                ("max-keys", "1000"),
                ("encoding-type", "url"),
            ],
            [],
            b"",
        ),
        (
            "create-multipart-upload",
            "POST",
            BUCKET,
            "big/file.bin",
            [("uploads", "")],
            [("Content-Type", "application/octet-stream"), (meta + "mode", "0600")],
            b"",
        ),
        (
            "upload-part",
            "PUT",
            BUCKET,
            "big/file.bin",
            [("partNumber", "7"), ("uploadId", UPLOAD_ID)],
            [("Content-MD5", CONTENT_MD5), ("Content-Length", "0")],
            b"",
        ),
        (
            "list-parts",
            "GET",
            BUCKET,
            "big/file.bin",
            [("uploadId", UPLOAD_ID), ("max-parts", "1000"), ("part-number-marker", "3")],
            [],
            b"",
        ),
        (
            "complete-multipart-upload",
            "POST",
            BUCKET,
            "big/file.bin",
            [("uploadId", UPLOAD_ID)],
            [("Content-Type", "application/xml")],
            COMPLETE_BODY,
        ),
        (
            "delete-objects",
            "POST",
            BUCKET,
            None,
            [("delete", "")],
            [
                ("Content-Type", "application/xml"),
                ("Content-MD5", "w0kqPu2wg1eBvlM2m3pHHg=="),
            ],
            DELETE_BODY,
        ),
        (
            "copy-object",
            "PUT",
            BUCKET,
            "dst/copy.txt",
            [],
            [
                (copy_source, "/" + BUCKET + "/" + enc("src dir/naïve.txt", True)),
                (f"x-{vendor}-metadata-directive", "REPLACE"),
                (meta + "mtime", "1741334950"),
            ],
            b"",
        ),
        ("get-odd-key", "GET", BUCKET, ODD_KEY, [], [], b""),
        ("put-odd-key", "PUT", BUCKET, ODD_KEY, [], [("Content-Type", "text/plain")], b"x"),
        ("list-buckets", "GET", None, None, [], [], b""),
        (
            "get-object-version",
            "GET",
            BUCKET,
            "docs/readme.txt",
            [("versionId", "CAEQNhiBgMDJgZCA0BYiIDc4MGZjZGI2OWZlNzQ2NjE4ZjY+YjFiMTk2/Tc0"),
             ("response-content-type", "text/plain")],
            [],
            b"",
        ),
    ]
    # Object options (storage class, encryption, ACL, tags, caching headers,
    # requester pays): OSS signs only its x-oss- headers, Content-Type and
    # Content-MD5, SigV4 every header.
    amz = vendor == "amz"
    sse, kms, key_id = (
        ("x-amz-server-side-encryption", "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id")
        if amz
        else ("x-oss-server-side-encryption", "KMS", "x-oss-server-side-encryption-key-id")
    )
    acl = "x-amz-acl" if amz else "x-oss-object-acl"
    reqs += [
        (
            "put-object-options",
            "PUT",
            BUCKET,
            "site/index.html",
            [],
            [
                ("Content-Type", "text/html"),
                ("Cache-Control", "max-age=300"),
                ("Content-Disposition", 'attachment; filename="index.html"'),
                ("Content-Encoding", "gzip"),
                ("Expires", "Thu, 01 Jan 2026 00:00:00 GMT"),
                (f"x-{vendor}-storage-class", "STANDARD_IA" if amz else "IA"),
                (sse, kms),
                (key_id, "arn:aws:kms:eu-central-1:111122223333:key/k-1" if amz else "k-1"),
                (acl, "public-read"),
                (f"x-{vendor}-tagging", "team=web&env=prod%20eu"),
                (f"x-{vendor}-request-payer", "requester"),
                (meta + "mtime", "1741334950"),
            ],
            b"<html></html>",
        ),
        (
            "create-multipart-upload-options",
            "POST",
            BUCKET,
            "big/cold.bin",
            [("uploads", "")],
            [
                ("Content-Type", "application/octet-stream"),
                (f"x-{vendor}-storage-class", "DEEP_ARCHIVE" if amz else "ColdArchive"),
                (sse, "AES256"),
                (f"x-{vendor}-tagging", "tier=cold"),
                (f"x-{vendor}-request-payer", "requester"),
            ]
            + ([("x-amz-checksum-algorithm", "CRC64NVME"), ("x-amz-checksum-type", "FULL_OBJECT")] if amz else []),
            b"",
        ),
        (
            "list-requester-pays",
            "GET",
            BUCKET,
            None,
            [("list-type", "2"), ("prefix", "site/")],
            [(f"x-{vendor}-request-payer", "requester")],
            b"",
        ),
    ]
    if vendor == "amz":
        # SigV4 signs every header; Trimall must fold this the way S3 does.
        reqs.append(
            (
                "put-header-whitespace",
                "PUT",
                BUCKET,
                "ws.txt",
                [],
                [(meta + "note", "  two   spaces\tand a tab  "), ("Content-Type", "text/plain")],
                b"ws",
            )
        )
    return reqs


TOKEN_CASES = {"get-object", "put-object-meta-md5-type", "list-objects-v2", "upload-part"}


def case_record(scheme, name, region, method, host, path, query, headers, bucket, key, payload, token):
    return {
        "name": name,
        "scheme": scheme,
        "region": region,
        "method": method,
        "host": host,
        "path": path,
        "query": [list(p) for p in query],
        "headers": [list(h) for h in headers],
        "bucket": bucket,
        "key": key,
        "payload": payload,
        "session_token": token,
        "timestamp": NOW_UNIX,
        "timestamp_rfc3339": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def pick(headers, names):
    lower = {k.lower(): v for k, v in headers.items()}
    return {n: lower[n] for n in names if n in lower}


# --- S3: botocore -----------------------------------------------------------------


class _S3Config:
    def __init__(self, sign_payload):
        self.s3 = {"payload_signing_enabled": sign_payload}


def sign_s3(case):
    creds = botocore.credentials.Credentials(AK, SECRET, case["session_token"])
    auth = botocore.auth.S3SigV4Auth(creds, "s3", case["region"])
    scheme = "http" if case["host"].startswith("127.") else "https"
    url = f"{scheme}://{case['host']}{case['path']}"
    req = botocore.awsrequest.AWSRequest(
        method=case["method"],
        url=url,
        headers=dict(case["headers"]),
        data=case.pop("_body"),
        params=[tuple(p) for p in case["query"]],
    )
    signed = case["payload"] != "UNSIGNED-PAYLOAD"
    req.context["client_config"] = _S3Config(signed)
    auth.add_auth(req)
    out = pick(
        req.headers,
        ["authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"],
    )
    if signed:
        assert out["x-amz-content-sha256"] == case["payload"], (case["name"], out)
    return out


def s3_cases():
    out = []
    styles = [
        # (style, region, host for a bucket, host without one, path prefix)
        ("vhost", "eu-central-1", f"{BUCKET}.s3.eu-central-1.amazonaws.com", "s3.eu-central-1.amazonaws.com", ""),
        ("path", "garage", "127.0.0.1:3900", "127.0.0.1:3900", "/" + BUCKET),
    ]
    for style, region, bucket_host, plain_host, prefix in styles:
        for signed in (False, True):
            for name, method, bucket, key, query, headers, body in requests_for("amz"):
                if bucket is None:
                    host, path = plain_host, "/"
                else:
                    host = bucket_host
                    if key is None:
                        path = prefix or "/"
                    else:
                        path = prefix + "/" + enc(key, True)
                payload = hashlib.sha256(body).hexdigest() if signed else "UNSIGNED-PAYLOAD"
                tokens = [None, TOKEN] if name in TOKEN_CASES and style == "vhost" else [None]
                for token in tokens:
                    label = f"{name}/{style}/{'signed' if signed else 'unsigned'}"
                    if token:
                        label += "/token"
                    case = case_record(
                        "s3_v4", label, region, method, host, path, query, headers, bucket, key, payload, token
                    )
                    case["_body"] = body
                    case["expected"] = sign_s3(case)
                    case["expected_by"] = "botocore " + botocore.__version__
                    out.append(case)
    return out


# --- OSS: alibabacloud-oss-v2 and oss2 ----------------------------------------------

OSS_REGION = "cn-hangzhou"
OSS_ENDPOINT = "oss-cn-hangzhou.aliyuncs.com"


def oss_host_path(bucket, key):
    if bucket is None:
        return OSS_ENDPOINT, "/"
    return f"{bucket}.{OSS_ENDPOINT}", "/" + enc(key or "", True)


def oss_url(case):
    url = f"https://{case['host']}{case['path']}"
    if case["query"]:
        url += "?" + wire_query(case["query"])
    return url


def v2_ctx(case):
    return SigningContext(
        product="oss",
        region=case["region"],
        bucket=case["bucket"],
        key=case["key"],
        request=HttpRequest(case["method"], oss_url(case), headers=dict(case["headers"])),
        credentials=OssCredentials(AK, SECRET, case["session_token"]),
        signing_time=NOW,
    )


def oss2_request(case):
    return oss2.http.Request(
        case["method"],
        f"https://{case['host']}{case['path']}",
        params=dict(case["query"]),
        headers=dict(case["headers"]),
        region=case["region"],
        product="oss",
    )


def oss2_auth(case, version):
    if case["session_token"]:
        return oss2.StsAuth(AK, SECRET, case["session_token"], auth_version=version)
    return oss2.make_auth(AK, SECRET, version)


SIG = re.compile(r"Signature=([0-9a-f]{64})")


def sign_oss_v4(case):
    ctx = v2_ctx(case)
    SignerV4().sign(ctx)
    out = pick(
        ctx.request.headers,
        ["authorization", "x-oss-date", "x-oss-content-sha256", "x-oss-security-token"],
    )

    req = oss2_request(case)
    oss2_auth(case, oss2.AUTH_VERSION_4)._sign_request(req, case["bucket"], case["key"] or "")
    cross = req.headers["authorization"]
    assert SIG.search(cross).group(1) == SIG.search(out["authorization"]).group(1), (
        case["name"],
        cross,
        out["authorization"],
    )
    assert req.headers["x-oss-date"] == out["x-oss-date"]
    return out, cross


def sign_oss_v1(case):
    req = oss2_request(case)
    oss2_auth(case, oss2.AUTH_VERSION_1)._sign_request(req, case["bucket"], case["key"] or "")
    out = pick(req.headers, ["authorization", "date", "x-oss-security-token"])

    cross = None
    if not case["session_token"]:
        ctx = v2_ctx(case)
        SignerV1().sign(ctx)
        cross = ctx.request.headers["Authorization"]
        assert cross == out["authorization"], (case["name"], cross, out["authorization"])
        assert ctx.request.headers["Date"] == out["date"]
    return out, cross


def oss_cases():
    out = []
    for scheme, signer, by, cross_by in (
        ("oss_v4", sign_oss_v4, "alibabacloud-oss-v2 " + alibabacloud_oss_v2.__version__, "oss2"),
        ("oss_v1", sign_oss_v1, "oss2 " + oss2.__version__, "alibabacloud-oss-v2"),
    ):
        for name, method, bucket, key, query, headers, _body in requests_for("oss"):
            host, path = oss_host_path(bucket, key)
            for token in [None, TOKEN] if name in TOKEN_CASES else [None]:
                label = name + ("/token" if token else "")
                case = case_record(
                    scheme, label, OSS_REGION if scheme == "oss_v4" else None, method, host, path,
                    query, headers, bucket, key, "UNSIGNED-PAYLOAD", token,
                )
                expected, cross = signer(case)
                case["expected"] = expected
                case["expected_by"] = by
                if cross is not None:
                    case["cross_check_authorization"] = cross
                    case["cross_check_by"] = cross_by
                out.append(case)
    return out


def main():
    cases = s3_cases() + oss_cases()
    doc = {
        "comment": "Generated by gen_signing_vectors.py; do not edit by hand.",
        "access_key_id": AK,
        "secret_access_key": SECRET,
        "sdk_versions": {
            "botocore": botocore.__version__,
            "oss2": oss2.__version__,
            "alibabacloud-oss-v2": alibabacloud_oss_v2.__version__,
        },
        "cases": cases,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "signing.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    counts = {}
    for c in cases:
        counts[c["scheme"]] = counts.get(c["scheme"], 0) + 1
    print(f"wrote {len(cases)} cases: {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
