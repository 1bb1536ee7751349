"""Data under a customer-managed KMS key needs a KMS grant, as on AWS (kms_grants.py);
and S3 object versions reach Lambda code as templates pin them (object_versions.py).

    $AIRFLOW_STACK_VENV/bin/pytest -p no:cacheprovider tests/aws_emulator -k kms_grants
"""

import base64
import hashlib
import uuid

import pytest
from botocore.exceptions import ClientError

from harness import REGION, calls, client, register, wait

SM_VIA = {"StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}}
S3_VIA = {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}


def allow(action, resource="*", condition=None):
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def denied_action(endpoint, identity) -> list:
    return [c["action"] for c in calls(endpoint, identity) if not c["allowed"]]


def test_a_secret_under_a_customer_managed_key_needs_kms_decrypt(aws, endpoint):
    key = aws("kms").create_key(Description="stack key")["KeyMetadata"]["Arn"]
    secret = aws("secretsmanager").create_secret(Name="fernet", KmsKeyId=key,
                                                 SecretString="v")["ARN"]
    without = register(endpoint, "no-kms", allow("secretsmanager:GetSecretValue", secret))
    with pytest.raises(ClientError) as e:
        client(endpoint, "secretsmanager", without).get_secret_value(SecretId=secret)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "kms:Decrypt" in e.value.response["Error"]["Message"]
    assert denied_action(endpoint, "no-kms") == ["kms:Decrypt"]

    # The grant through Secrets Manager only, as the stack writes it.
    with_grant = register(endpoint, "with-kms",
                          allow("secretsmanager:GetSecretValue", secret),
                          allow("kms:Decrypt", key, SM_VIA))
    value = client(endpoint, "secretsmanager", with_grant).get_secret_value(SecretId=secret)
    assert value["SecretString"] == "v"
    (kms_call,) = [c for c in calls(endpoint, "with-kms") if c["action"] == "kms:Decrypt"]
    assert kms_call["resource"] == key and kms_call["allowed"]

    # A grant on another key does not do.
    other = aws("kms").create_key(Description="other")["KeyMetadata"]["Arn"]
    wrong = register(endpoint, "wrong-key", allow("secretsmanager:GetSecretValue", secret),
                     allow("kms:Decrypt", other, SM_VIA))
    with pytest.raises(ClientError):
        client(endpoint, "secretsmanager", wrong).get_secret_value(SecretId=secret)


def test_writing_a_secret_value_needs_generate_data_key(aws, endpoint):
    key = aws("kms").create_key()["KeyMetadata"]["Arn"]
    secret = aws("secretsmanager").create_secret(Name="db", KmsKeyId=key)["ARN"]
    decrypt_only = register(endpoint, "writer", allow("secretsmanager:PutSecretValue", secret),
                            allow("kms:Decrypt", key, SM_VIA))
    with pytest.raises(ClientError):
        client(endpoint, "secretsmanager", decrypt_only).put_secret_value(
            SecretId=secret, SecretString="x")
    assert denied_action(endpoint, "writer") == ["kms:GenerateDataKey"]


def test_a_secret_under_the_aws_managed_key_needs_no_kms_grant(aws, endpoint):
    secret = aws("secretsmanager").create_secret(Name="plain", SecretString="v")["ARN"]
    reader = register(endpoint, "reader", allow("secretsmanager:GetSecretValue", secret))
    assert client(endpoint, "secretsmanager", reader).get_secret_value(
        SecretId=secret)["SecretString"] == "v"
    assert all(not c["action"].startswith("kms:") for c in calls(endpoint, "reader"))


def test_an_sse_kms_object_needs_kms_decrypt_to_read_and_generate_data_key_to_write(
        aws, endpoint):
    key = aws("kms").create_key()["KeyMetadata"]["Arn"]
    s3 = aws("s3")
    s3.create_bucket(Bucket="data")
    s3.put_bucket_encryption(Bucket="data", ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                               "KMSMasterKeyID": key},
        "BucketKeyEnabled": True}]})
    s3.put_object(Bucket="data", Key="dags/a.py", Body=b"x")
    objects = "arn:aws:s3:::data/*"
    without = register(endpoint, "task-no-kms", allow(["s3:GetObject", "s3:PutObject"], objects))
    for call_it in (lambda c: c.get_object(Bucket="data", Key="dags/a.py"),
                    lambda c: c.put_object(Bucket="data", Key="logs/b", Body=b"y")):
        with pytest.raises(ClientError) as e:
            call_it(client(endpoint, "s3", without))
        assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert denied_action(endpoint, "task-no-kms") == ["kms:Decrypt", "kms:GenerateDataKey"]

    granted = register(endpoint, "task", allow(["s3:GetObject", "s3:PutObject"], objects),
                       allow(["kms:Decrypt", "kms:GenerateDataKey"], key, S3_VIA))
    s3_task = client(endpoint, "s3", granted)
    assert s3_task.get_object(Bucket="data", Key="dags/a.py")["Body"].read() == b"x"
    s3_task.put_object(Bucket="data", Key="logs/b", Body=b"y")
    # HeadObject reads metadata only: no KMS call, as on AWS.
    s3_task.head_object(Bucket="data", Key="dags/a.py")
    assert [c["action"] for c in calls(endpoint, "task") if c["operation"] == "HeadObject"] \
        == ["s3:GetObject"]


# --------------------------------------------------------------------------------------
# Object versions (object_versions.py)
# --------------------------------------------------------------------------------------

TEMPLATE = """{
  "Parameters": {"Version": {"Type": "String"}},
  "Resources": {
    "Assets": {"Type": "AWS::S3::Bucket",
               "Properties": {"BucketName": "pinned-assets",
                              "VersioningConfiguration": {"Status": "Enabled"}}},
    "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
      "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
      "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}},
    "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
      "Runtime": "provided.al2023", "Handler": "bootstrap", "Timeout": TIMEOUT,
      "Role": {"Fn::GetAtt": ["Role", "Arn"]},
      "Code": {"S3Bucket": "code", "S3Key": "fn.zip", "S3ObjectVersion": {"Ref": "Version"}}}}
  }
}"""


def change(cfn, body, parameters, change_set_type):
    """A change set of stack `pinned` with parameters, executed and waited for."""
    name = f"c-{uuid.uuid4().hex[:8]}"
    cfn.create_change_set(StackName="pinned", ChangeSetName=name, TemplateBody=body,
                          ChangeSetType=change_set_type, Parameters=parameters,
                          Capabilities=["CAPABILITY_IAM"])
    cfn.get_waiter("change_set_create_complete").wait(
        StackName="pinned", ChangeSetName=name, WaiterConfig={"Delay": 1})
    cfn.execute_change_set(StackName="pinned", ChangeSetName=name)
    return wait(cfn, "pinned")


def code_sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_a_template_bucket_is_versioned_and_lambda_reads_the_pinned_version(aws):
    s3, cfn = aws("s3"), aws("cloudformation")
    s3.create_bucket(Bucket="code")
    s3.put_bucket_versioning(Bucket="code", VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket="code", Key="fn.zip", Body=b"PK first")["VersionId"]
    s3.put_object(Bucket="code", Key="fn.zip", Body=b"PK replaced")
    params = [{"ParameterKey": "Version", "ParameterValue": v1}]
    stack, _ = change(cfn, TEMPLATE.replace("TIMEOUT", "3"), params, "CREATE")
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    # The template's VersioningConfiguration took effect.
    assert s3.get_bucket_versioning(Bucket="pinned-assets")["Status"] == "Enabled"
    name = cfn.describe_stack_resource(StackName="pinned", LogicalResourceId="Fn")[
        "StackResourceDetail"]["PhysicalResourceId"]
    lam = aws("lambda")
    assert lam.get_function(FunctionName=name)["Configuration"]["CodeSha256"] == \
        code_sha(b"PK first"), "the pinned version, not the key's latest"
    # An update reads the code again: still the pinned version.
    stack, _ = change(cfn, TEMPLATE.replace("TIMEOUT", "4"), params, "UPDATE")
    assert stack["StackStatus"] == "UPDATE_COMPLETE", stack
    assert lam.get_function(FunctionName=name)["Configuration"]["CodeSha256"] == \
        code_sha(b"PK first")


def test_ecs_pulls_a_secret_under_a_customer_managed_key_only_with_kms_decrypt(aws, endpoint):
    """ECS reads a task's `Secrets` with the execution role; under a customer-managed key
    that read needs kms:Decrypt too (tasks.py), or the task fails to start as on AWS."""
    import json

    from test_strict import LOGS_STATEMENT, _execution_role, _network, _run, _task_definition

    aws("ecs").create_cluster(clusterName="jobs")
    aws("logs").create_log_group(logGroupName="/tasks")
    key = aws("kms").create_key()["KeyMetadata"]["Arn"]
    secret = aws("secretsmanager").create_secret(Name="fernet", KmsKeyId=key,
                                                 SecretString="k")["ARN"]
    subnet, group = _network(aws("ec2"))
    role = _execution_role(aws, [LOGS_STATEMENT, allow("secretsmanager:GetSecretValue", secret)])
    _task_definition(aws, "job", execution_role=role,
                     secrets=[{"name": "AIRFLOW__CORE__FERNET_KEY", "valueFrom": secret}])
    stopped = _run(aws("ecs"), "job", subnet, group)
    assert stopped["stopCode"] == "TaskFailedToStart"
    assert f"kms:Decrypt on resource: {key}" in stopped["stoppedReason"], stopped["stoppedReason"]

    aws("iam").put_role_policy(RoleName="exec", PolicyName="key", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [allow("kms:Decrypt", key, SM_VIA)]}))
    assert _run(aws("ecs"), "job", subnet, group)["containers"][0]["exitCode"] == 0
