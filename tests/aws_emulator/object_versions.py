"""S3 object versions where moto's CloudFormation and Lambda models drop them.

Two gaps, both of which made the emulator more permissive than AWS (DESIGN.md, 8):

* moto's `AWS::S3::Bucket` ignores `VersioningConfiguration`, so a bucket the template
  declares versioned was not: every object had version id "null", and a later write
  replaced it in place.
* moto's Lambda reads `Code.S3Bucket`/`Code.S3Key` and ignores `Code.S3ObjectVersion`,
  so a function pinned to one object version got whatever the key held when it was
  created or updated. AWS reads exactly the pinned version
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-lambda-function-code.html),
  and fails with NoSuchVersion when it is not there.

`install()` (called once from server.py's `apply_patches`) closes both.
"""

from __future__ import annotations

from moto.awslambda import models as lambda_models
from moto.s3.models import FakeBucket, s3_backends
from moto.utilities.utils import get_partition

ORIGINAL: dict = {}


def _apply_versioning(bucket_name: str, properties: dict, account_id: str,
                      region_name: str) -> None:
    """A template's VersioningConfiguration.Status, as PutBucketVersioning would set it.
    Left out: versioning is not touched (a bucket never goes back to unversioned)."""
    status = (properties.get("VersioningConfiguration") or {}).get("Status")
    if status in ("Enabled", "Suspended"):
        backend = s3_backends[account_id][get_partition(region_name)]
        backend.put_bucket_versioning(bucket_name, status)


def bucket_create(cls, resource_name, cloudformation_json, account_id, region_name,
                  **kwargs):
    bucket = ORIGINAL["bucket_create"].__func__(cls, resource_name, cloudformation_json,
                                                account_id, region_name, **kwargs)
    _apply_versioning(bucket.name, cloudformation_json.get("Properties") or {}, account_id,
                      region_name)
    return bucket


def bucket_update(cls, original_resource, new_resource_name, cloudformation_json,
                  account_id, region_name):
    bucket = ORIGINAL["bucket_update"].__func__(cls, original_resource, new_resource_name,
                                                cloudformation_json, account_id,
                                                region_name)
    _apply_versioning(bucket.name, cloudformation_json.get("Properties") or {}, account_id,
                      region_name)
    return bucket


def code_object(account_id: str, partition: str, data: dict):
    """The S3 object a function's Code names: the pinned S3ObjectVersion when given
    (NoSuchVersion when the bucket has no such version, as Lambda reports it), else
    the key's current object, as moto did."""
    version = data.get("S3ObjectVersion")
    if not version:
        return ORIGINAL["validate"](account_id, partition=partition, data=data)
    key = s3_backends[account_id][partition].get_object(
        data["S3Bucket"], data["S3Key"], version_id=version)
    if key is None or not hasattr(key, "value"):
        raise ValueError(
            "InvalidParameterValueException",
            "Error occurred while GetObject. S3 Error Code: NoSuchVersion. S3 Error "
            "Message: The specified version does not exist.")
    return key


def set_function_code(self, updated_spec: dict) -> None:
    """moto's UpdateFunctionCode path (also CloudFormation's update) reads the key's
    current object; with S3ObjectVersion the pinned one is read instead."""
    ORIGINAL["set_function_code"](self, updated_spec)
    if updated_spec is self.code or "S3Key" not in updated_spec:
        return  # creation (code_object already read it) or not S3 code
    if updated_spec.get("S3ObjectVersion"):
        key = code_object(self.account_id, self.partition, updated_spec)
        (self.code_bytes, self.code_size, self.code_sha_256,
         self.code_digest) = lambda_models._s3_content(key)
        self.code["S3ObjectVersion"] = updated_spec["S3ObjectVersion"]
    else:
        self.code.pop("S3ObjectVersion", None)


def install() -> None:
    if ORIGINAL:
        return
    ORIGINAL["bucket_create"] = FakeBucket.create_from_cloudformation_json
    ORIGINAL["bucket_update"] = FakeBucket.update_from_cloudformation_json
    FakeBucket.create_from_cloudformation_json = classmethod(bucket_create)
    FakeBucket.update_from_cloudformation_json = classmethod(bucket_update)
    ORIGINAL["validate"] = lambda_models._validate_s3_bucket_and_key
    lambda_models._validate_s3_bucket_and_key = code_object
    function = lambda_models.LambdaFunction
    ORIGINAL["set_function_code"] = function._set_function_code
    function._set_function_code = set_function_code
