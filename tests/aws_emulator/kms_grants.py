"""The KMS authorizations AWS adds when data is encrypted with a customer-managed key.

Reading a secret or an S3 object encrypted under a customer-managed KMS key makes the
service call KMS on the caller's behalf, and KMS authorizes the caller, so the caller
needs a KMS permission on the key besides the service's own:

* Secrets Manager (user guide, "Secret encryption and decryption", permissions for the
  KMS key): GetSecretValue needs `kms:Decrypt`; a new secret value (PutSecretValue)
  needs `kms:GenerateDataKey`.
* S3 (user guide, "Using server-side encryption with AWS KMS keys (SSE-KMS)"): GetObject
  of an SSE-KMS object needs `kms:Decrypt`; PutObject into SSE-KMS needs
  `kms:GenerateDataKey`, a multipart upload `kms:Decrypt` too.

The request context carries `kms:ViaService` (`<service>.<region>.amazonaws.com`), the
service that made the KMS call, as AWS sets it. An AWS managed key (`aws/secretsmanager`,
`aws/s3`, or no key at all) needs no KMS grant in an identity policy: its key policy
allows every principal of the account that may use the service.

Not modelled: the key policy itself. The emulator takes it to delegate to IAM (the
default key policy's account statement, which the stack's `create` key has), so the
identity policy decides, as on AWS for such a key.

authz.classify() appends these checks to the operation's own (`key_checks`).
"""

from __future__ import annotations

from moto.kms.models import kms_backends
from moto.s3.models import s3_backends
from moto.secretsmanager.models import secretsmanager_backends

# AWS managed keys are named by these aliases; a missing KmsKeyId means the same.
_AWS_MANAGED_PREFIX = "alias/aws/"


def key_arn(account: str, region: str, key_id: str | None) -> str | None:
    """The ARN of a customer-managed key named by id, ARN or alias; None for an AWS
    managed key (or none)."""
    if not key_id or key_id.startswith(_AWS_MANAGED_PREFIX) or ":alias/aws/" in key_id:
        return None
    try:
        return kms_backends[account][region].describe_key(key_id).arn
    except Exception:
        # A key moto does not hold (another account's, by ARN): authorize on its ARN.
        return key_id if key_id.startswith("arn:") else None


def _via(service: str, region: str) -> dict:
    return {"kms:ViaService": f"{service}.{region}.amazonaws.com"}


def _secret_checks(req, op, check_cls) -> list:
    backend = secretsmanager_backends[req.account][req.region]
    needs = {"secretsmanager:GetSecretValue": "kms:Decrypt",
             "secretsmanager:PutSecretValue": "kms:GenerateDataKey"}
    out = []
    for check in op.checks:
        action = needs.get(check.action)
        secret = backend.secrets.get(check.resource) if action else None
        arn = key_arn(req.account, req.region, getattr(secret, "kms_key_id", None))
        if arn:
            out.append(check_cls(action, arn, _via("secretsmanager", req.region)))
    return out


def _object(req, bucket_name: str, key_name: str):
    """The object a GetObject reads (the version asked for, else the current one),
    without moto's side effects; None when there is none."""
    bucket = s3_backends[req.account]["aws"].buckets.get(bucket_name)
    if bucket is None:
        return None
    version = req.q("versionId")
    if version:
        return next((k for k in bucket.keys.getlist(key_name, default=[])
                     if str(getattr(k, "version_id", "")) == version), None)
    return bucket.keys.get(key_name)


def _bucket_default_key(req, bucket_name: str) -> str | None:
    bucket = s3_backends[req.account]["aws"].buckets.get(bucket_name)
    rule = ((getattr(bucket, "encryption", None) or {}).get("Rule") or {}).get(
        "ApplyServerSideEncryptionByDefault") or {}
    if rule.get("SSEAlgorithm") != "aws:kms":
        return None
    return rule.get("KMSMasterKeyID")


def _s3_checks(req, op, check_cls) -> list:
    bucket, key = op.s3_bucket, op.s3_key
    if not bucket or not key:
        return []
    via = _via("s3", req.region)
    if op.name == "GetObject":
        obj = _object(req, bucket, key)
        if obj is None or getattr(obj, "encryption", None) != "aws:kms":
            return []
        arn = key_arn(req.account, req.region, getattr(obj, "kms_key_id", None))
        return [check_cls("kms:Decrypt", arn, via)] if arn else []
    if op.name in ("PutObject", "CopyObject", "CreateMultipartUpload"):
        requested = req.header("x-amz-server-side-encryption-aws-kms-key-id") or None
        arn = key_arn(req.account, req.region, requested or _bucket_default_key(req, bucket))
        if not arn:
            return []
        checks = [check_cls("kms:GenerateDataKey", arn, via)]
        if op.name == "CreateMultipartUpload":
            checks.append(check_cls("kms:Decrypt", arn, via))
        return checks
    return []


def secret_read(account: str, region: str, secret_arn: str) -> tuple | None:
    """`(action, key ARN, context)` of the KMS check reading this secret needs (ECS
    pulling a task's secrets with its execution role, tasks.py), or None under an AWS
    managed key."""
    secret = secretsmanager_backends[account][region].secrets.get(secret_arn)
    arn = key_arn(account, region, getattr(secret, "kms_key_id", None))
    return ("kms:Decrypt", arn, _via("secretsmanager", region)) if arn else None


def key_checks(req, op, check_cls) -> list:
    """The KMS checks an operation needs besides its own (empty for most)."""
    if not op.modelled or op.free:
        return []
    if op.service == "secretsmanager":
        return _secret_checks(req, op, check_cls)
    if op.service == "s3":
        return _s3_checks(req, op, check_cls)
    return []
