"""Proves each behaviour the patched moto server adds (tests/aws_emulator/server.py).

    $AIRFLOW_STACK_VENV/bin/python -m pytest tests/aws_emulator -q
"""

import io
import json
import os
import re
import time
import urllib.request
import zipfile

import pytest
from botocore.exceptions import ClientError

from harness import SERVER, deploy, events, outputs, wait

def requests_seen(record):
    return [json.loads(line) for line in record.read_text().splitlines()]


def role_policy(may_put_secret=True):
    """The custom-resource Lambda's role: it runs as this role (server.py lambda_identity),
    so it needs PutSecretValue on the secret and the right to write its own logs."""
    statements = [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": {"Fn::Sub": "arn:aws:logs:${AWS::Region}:${AWS::AccountId}:"
                                 "log-group:/aws/lambda/*:*"}},
    ]
    if may_put_secret:
        statements.append({"Effect": "Allow", "Action": "secretsmanager:PutSecretValue",
                           "Resource": {"Ref": "Secret"}})
    return [{"PolicyName": "custom-resource",
             "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}]


def template(record, *, retention=7, desired=2, greeting="world", fail="false", extra=None,
             may_put_secret=True):
    resources = {
        "Bucket": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain"},
        "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": {"Fn::Sub": "/airflow/${AWS::StackName}"},
            "RetentionInDays": retention}},
        "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {
            "Name": {"Fn::Sub": "${AWS::StackName}/db"}}},
        "Db": {"Type": "AWS::RDS::DBCluster", "DeletionPolicy": "Snapshot",
               "Properties": {"Engine": "aurora-postgresql"}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]},
            "Policies": role_policy(may_put_secret)}},
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
            "Code": {"S3Bucket": "code", "S3Key": "cr.zip"}, "Handler": "bootstrap",
            "Runtime": "provided.al2023", "Timeout": 30, "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Environment": {"Variables": {"RECORD_FILE": str(record)}}}},
        "Init": {"Type": "Custom::DbInit", "Properties": {
            "ServiceToken": {"Fn::GetAtt": ["Fn", "Arn"]}, "Name": greeting, "Fail": fail,
            "Number": 42, "Delay": "0.5", "SecretArn": {"Ref": "Secret"},
            "DbHost": {"Fn::GetAtt": ["Db", "Endpoint.Address"]},
            # Custom resources run as early as their dependencies allow (server.py
            # dependency_order): what Init refers to exists before it runs.
            "Refs": [{"Ref": name} for name in ["Bucket", *(extra or {})]]}},
        "Cluster": {"Type": "AWS::ECS::Cluster"},
        "Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {
            "Family": "web", "Memory": "512",
            "ContainerDefinitions": [{"Name": "web", "Image": "nginx", "Memory": 512}]}},
        "Service": {"Type": "AWS::ECS::Service", "Properties": {
            "Cluster": {"Ref": "Cluster"}, "TaskDefinition": {"Ref": "Task"},
            "DesiredCount": desired}},
    }
    resources = {**(extra or {}), **resources}
    return json.dumps({"Resources": resources, "Outputs": {
        "DbEndpoint": {"Value": {"Fn::Sub": "${Db.Endpoint.Address}:${Db.Endpoint.Port}"}},
        "DbArn": {"Value": {"Fn::GetAtt": ["Db", "DBClusterArn"]}},
        "SecretArn": {"Value": {"Ref": "Secret"}},
        "Greeting": {"Value": {"Fn::GetAtt": ["Init", "Greeting"]}},
        "Number": {"Value": {"Fn::GetAtt": ["Init", "Number"]}},
        "BucketName": {"Value": {"Ref": "Bucket"}, "Export": {"Name": {"Fn::Sub": "${AWS::StackName}-bucket"}}},
        "ServiceArn": {"Value": {"Fn::GetAtt": ["Service", "ServiceArn"]}},
    }})


def test_change_set_lifecycle(aws, lambda_code):
    cfn, record = aws("cloudformation"), lambda_code[2]

    # Create through a change set: async, outputs attached, custom resource answered.
    stack, seen = deploy(cfn, "app", template(record), "CREATE")
    assert stack["StackStatus"] == "CREATE_COMPLETE", events(cfn, "app")
    assert "CREATE_IN_PROGRESS" in seen  # the custom resource takes 0.5 s; we polled through it
    out = outputs(stack)
    # Fn::Sub on Endpoint.Address; shaped like RDS's (the secrets Lambda checks the suffix)
    assert re.fullmatch(r"[a-z0-9-]+\.cluster-[0-9a-f]{12}\.us-east-1\.rds\.amazonaws\.com:5432",
                        out["DbEndpoint"]), out["DbEndpoint"]
    assert out["DbArn"].startswith("arn:aws:rds:us-east-1:")
    assert out["Greeting"] == "hello world"
    assert out["Number"] == "42"  # scalars reach the handler as strings
    assert out["ServiceArn"].startswith("arn:aws:ecs:")  # unsupported GetAtt on a real model
    assert aws("s3").head_bucket(Bucket=out["BucketName"])
    assert aws("cloudformation").list_exports()["Exports"][0]["Name"] == "app-bucket"

    # The Lambda ran for real: it put a value into the template-created secret via moto.
    secret = aws("secretsmanager").get_secret_value(SecretId=out["SecretArn"])
    assert secret["SecretString"] == "pw-world"
    (create,) = requests_seen(record)
    assert create["RequestType"] == "Create"
    assert create["ResourceProperties"]["DbHost"] == out["DbEndpoint"].split(":")[0]
    assert create["ResponseURL"].startswith("http://127.0.0.1:")
    assert aws("logs").describe_log_streams(logGroupName=_fn_log_group(aws, "app"))["logStreams"]

    # Per-resource events, in dependency order, with physical ids.
    evs = events(cfn, "app")
    for logical in ["Bucket", "Secret", "Db", "Fn", "Init", "Service"]:
        assert (logical, "CREATE_IN_PROGRESS", None) in evs
        assert [e for e in evs if e[:2] == (logical, "CREATE_COMPLETE")]
    order = [e[0] for e in evs if e[1] == "CREATE_COMPLETE"]
    assert order.index("Role") < order.index("Fn") < order.index("Init")
    assert order.index("Db") < order.index("Init")
    raw = cfn.describe_stack_events(StackName="app")["StackEvents"]
    init = next(e for e in raw if e["LogicalResourceId"] == "Init" and
                e["ResourceStatus"] == "CREATE_COMPLETE")
    assert init["PhysicalResourceId"] == "Init-id" and init["ResourceType"] == "Custom::DbInit"
    assert init["Timestamp"]
    resources = {r["LogicalResourceId"] for r in
                 cfn.list_stack_resources(StackName="app")["StackResourceSummaries"]}
    assert {"Db", "Secret", "Init", "Bucket"} <= resources

    # Update: retention 7->14, DesiredCount 2->3, custom resource property changed.
    n_events = len(evs)
    stack, seen = deploy(cfn, "app", template(record, retention=14, desired=3, greeting="moon"),
                         "UPDATE")
    assert stack["StackStatus"] == "UPDATE_COMPLETE", events(cfn, "app")[n_events:]
    assert "UPDATE_IN_PROGRESS" in seen
    assert outputs(stack)["Greeting"] == "hello moon"
    group = aws("logs").describe_log_groups(logGroupNamePrefix="/airflow/app")["logGroups"][0]
    assert group["retentionInDays"] == 14
    service = aws("ecs").describe_services(cluster=_physical(cfn, "app", "Cluster"),
                                           services=[_physical(cfn, "app", "Service")])
    assert service["services"][0]["desiredCount"] == 3
    update = requests_seen(record)[1]
    assert update["RequestType"] == "Update" and update["PhysicalResourceId"] == "Init-id"
    assert update["OldResourceProperties"]["Name"] == "world"
    assert update["ResourceProperties"]["Name"] == "moon"
    updated = {e[0] for e in events(cfn, "app")[n_events:] if e[1] == "UPDATE_COMPLETE"} - {"app"}
    assert updated == {"Logs", "Service", "Init"}

    # An update that leaves the custom resource alone sends it nothing.
    stack, _ = deploy(cfn, "app", template(record, retention=30, desired=3, greeting="moon"),
                      "UPDATE")
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert len(requests_seen(record)) == 2

    # Delete: Retain keeps the bucket (DELETE_SKIPPED), the custom resource gets a Delete.
    stack_id = stack["StackId"]
    bucket = outputs(stack)["BucketName"]
    cfn.delete_stack(StackName="app")
    deleted, _ = wait(cfn, stack_id)
    assert deleted["StackStatus"] == "DELETE_COMPLETE"
    evs = events(cfn, stack_id)
    assert ("Bucket", "DELETE_SKIPPED", None) in evs
    assert ("Db", "DELETE_SKIPPED", None) in evs  # Snapshot on a stub type
    assert ("Init", "DELETE_COMPLETE", None) in evs
    assert requests_seen(record)[-1]["RequestType"] == "Delete"
    assert aws("s3").head_bucket(Bucket=bucket)
    assert not aws("logs").describe_log_groups(logGroupNamePrefix="/airflow/app")["logGroups"]
    assert not cfn.list_exports()["Exports"]
    with pytest.raises(ClientError, match="does not exist"):
        cfn.describe_stacks(StackName="app")


def _physical(cfn, stack, logical):
    return cfn.describe_stack_resource(StackName=stack, LogicalResourceId=logical)[
        "StackResourceDetail"]["PhysicalResourceId"]


def _fn_log_group(aws, stack):
    (fn,) = [f for f in aws("lambda").list_functions()["Functions"]
             if f["FunctionName"].startswith(f"{stack}-Fn-")]
    return f"/aws/lambda/{fn['FunctionName']}"


def test_failed_custom_resource_rolls_back(aws, lambda_code):
    cfn, record = aws("cloudformation"), lambda_code[2]
    stack, _ = deploy(cfn, "bad", template(record, fail="true"), "CREATE")
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert "Outputs" not in stack
    evs = events(cfn, "bad")
    assert ("Init", "CREATE_FAILED", "boom: the handler was asked to fail") in evs
    statuses = [e[1] for e in evs if e[0] == "bad"]
    assert statuses[-2:] == ["ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"]
    # As on AWS, the failed Create is followed by a Delete with the id the handler returned.
    assert [r["RequestType"] for r in requests_seen(record)] == ["Create", "Delete"]
    assert requests_seen(record)[1]["PhysicalResourceId"] == "Init-id"
    # Everything created before the failure was deleted again, except what is retained.
    assert ("Fn", "DELETE_COMPLETE", None) in evs and ("Bucket", "DELETE_SKIPPED", None) in evs
    assert not aws("secretsmanager").list_secrets()["SecretList"]
    with pytest.raises(ClientError, match="ROLLBACK_COMPLETE"):
        cfn.update_stack(StackName="bad", TemplateBody=template(record))


def test_resource_error_becomes_create_failed(aws, lambda_code):
    """A moto error (duplicate log group name) is a CREATE_FAILED event, not an HTTP 500."""
    cfn = aws("cloudformation")
    aws("logs").create_log_group(logGroupName="/airflow/dup")
    stack, _ = deploy(cfn, "dup", template(lambda_code[2]), "CREATE")
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    (failure,) = [e for e in events(cfn, "dup") if e[1] == "CREATE_FAILED"]
    assert failure[0] == "Logs" and "already exists" in failure[2]


def test_failed_update_rolls_back(aws, lambda_code):
    cfn, record = aws("cloudformation"), lambda_code[2]
    deploy(cfn, "upd", template(record), "CREATE")
    extra = {"Queue": {"Type": "AWS::SQS::Queue"}}
    stack, _ = deploy(cfn, "upd", template(record, retention=14, greeting="x", fail="true",
                                           extra=extra), "UPDATE")
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    evs = events(cfn, "upd")
    assert ("Init", "UPDATE_FAILED", "boom: the handler was asked to fail") in evs
    assert ("Queue", "DELETE_COMPLETE", None) in evs
    assert outputs(stack)["Greeting"] == "hello world"  # the old outputs stay
    group = aws("logs").describe_log_groups(logGroupNamePrefix="/airflow/upd")["logGroups"][0]
    assert group["retentionInDays"] == 7  # rolled back
    # The rollback sends the custom resource an Update back to the old properties.
    rollback = requests_seen(record)[-1]
    assert rollback["RequestType"] == "Update" and rollback["ResourceProperties"]["Name"] == "world"


def test_create_stack_and_update_stack(aws, lambda_code):
    """The CreateStack/UpdateStack API path behaves like the change-set path."""
    cfn, record = aws("cloudformation"), lambda_code[2]
    cfn.create_stack(StackName="direct", TemplateBody=template(record))
    stack, seen = wait(cfn, "direct")
    assert stack["StackStatus"] == "CREATE_COMPLETE" and "CREATE_IN_PROGRESS" in seen
    assert outputs(stack)["Greeting"] == "hello world"
    cfn.update_stack(StackName="direct", TemplateBody=template(record, greeting="sun"))
    stack, _ = wait(cfn, "direct")
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert outputs(stack)["Greeting"] == "hello sun"


def test_change_set_names_are_per_stack(aws):
    cfn = aws("cloudformation")
    body = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                       "Outputs": {"Topic": {"Value": {"Ref": "Topic"}}}})
    for name in ["a", "b"]:
        cfn.create_change_set(StackName=name, ChangeSetName="deploy", TemplateBody=body,
                              ChangeSetType="CREATE")
    assert cfn.describe_change_set(StackName="b", ChangeSetName="deploy")["StackName"] == "b"
    cfn.execute_change_set(StackName="a", ChangeSetName="deploy")
    stack, _ = wait(cfn, "a")
    assert stack["StackStatus"] == "CREATE_COMPLETE" and outputs(stack)["Topic"]
    assert cfn.describe_stacks(StackName="b")["Stacks"][0]["StackStatus"] == "REVIEW_IN_PROGRESS"


def test_yaml_short_forms_and_stubs(aws):
    cfn = aws("cloudformation")
    body = """
Resources:
  Ns: {Type: AWS::ServiceDiscovery::PrivateDnsNamespace, Properties: {Name: airflow.local, Vpc: vpc-1}}
  Sd: {Type: AWS::ServiceDiscovery::Service, Properties: {NamespaceId: !Ref Ns}}
  Cache: {Type: AWS::ElastiCache::CacheCluster, Properties: {Engine: redis}}
  Alarm: {Type: AWS::CloudWatch::Alarm, Properties: {Threshold: 1}}
Outputs:
  Sd: {Value: !GetAtt Sd.Arn}
  SdId: {Value: !GetAtt [Sd, Id]}
  Ns: {Value: !Ref Ns}
  Redis: {Value: !Sub "${Cache.RedisEndpoint.Address}:${Cache.RedisEndpoint.Port}"}
  Alarm: {Value: !GetAtt Alarm.Arn}
"""
    cfn.create_stack(StackName="yaml", TemplateBody=body)
    stack, _ = wait(cfn, "yaml")
    assert stack["StackStatus"] == "CREATE_COMPLETE", events(cfn, "yaml")
    out = outputs(stack)
    assert out["Sd"].startswith("arn:aws:servicediscovery:") and out["SdId"].startswith("srv-")
    assert out["Ns"].startswith("ns-")
    assert re.fullmatch(r"[a-z0-9-]+\.[0-9a-f]{6}\.0001\.use1\.cache\.amazonaws\.com:6379",
                        out["Redis"]), out["Redis"]
    assert out["Alarm"].startswith("arn:aws:cloudwatch:")


def test_describe_stack_resource_reports_each_resources_own_status(aws, lambda_code):
    """AWS answers DescribeStackResource with the resource's own status; moto answered
    the stack's for every resource and did not know a custom resource until it was
    complete. The custom-resource Lambdas rely on it: they act only on a resource that
    CloudFormation is creating or updating (lambdas/cfn-custom-resource/src/origin.rs)."""
    cfn, record = aws("cloudformation"), lambda_code[2]
    stack_id = cfn.create_stack(StackName="status", TemplateBody=template(record),
                                Capabilities=["CAPABILITY_IAM"])["StackId"]

    def detail(logical):
        return cfn.describe_stack_resource(StackName=stack_id, LogicalResourceId=logical)[
            "StackResourceDetail"]

    during = None
    deadline = time.time() + 60
    while time.time() < deadline and during is None:
        try:
            init = detail("Init")  # the custom resource takes 0.5 s (Delay)
        except ClientError:
            init = None  # not started yet: "does not exist", as on AWS
        if init and init["ResourceStatus"] == "CREATE_IN_PROGRESS":
            during = (init, detail("Db"))
        time.sleep(0.02)
    assert during, "Init was never seen CREATE_IN_PROGRESS"
    init, db = during
    assert init["ResourceType"] == "Custom::DbInit" and init["StackId"] == stack_id
    assert db["ResourceStatus"] == "CREATE_COMPLETE"  # a dependency of Init: done before it
    stack, _ = wait(cfn, stack_id)
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert detail("Init")["ResourceStatus"] == "CREATE_COMPLETE"
    assert detail("Init")["PhysicalResourceId"]
    with pytest.raises(ClientError) as missing:
        detail("Nope")
    assert missing.value.response["Error"]["Code"] == "ValidationError"
    assert (missing.value.response["Error"]["Message"]
            == f"Resource Nope does not exist for stack {stack_id}")


def test_lambda_invoke(aws, lambda_code):
    bucket, key, record = lambda_code
    client = aws("lambda")
    role = aws("iam").create_role(RoleName="echo", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client.create_function(FunctionName="echo", Runtime="provided.al2023", Handler="bootstrap",
                           Role=role, Timeout=30,
                           Code={"S3Bucket": bucket, "S3Key": key},
                           Environment={"Variables": {"RECORD_FILE": str(record)}})
    response = client.invoke(FunctionName="echo", Payload=b'{"hello": "there"}')
    payload = json.loads(response["Payload"].read())
    assert payload["echo"] == {"hello": "there"} and payload["function"] == "echo"
    assert payload["endpoint"].startswith("http://127.0.0.1:")
    assert client.invoke(FunctionName="echo", InvocationType="Event",
                         Payload=b'{"n": 2}')["StatusCode"] == 202
    deadline = time.time() + 20
    while len(requests_seen(record)) < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert requests_seen(record)[-1] == {"n": 2}


def test_response_url_rejects_a_content_type(endpoint):
    request = urllib.request.Request(f"{endpoint}/_emulator/cfn-response/x", data=b"{}",
                                     method="PUT",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request)
    assert error.value.code == 403


def test_the_airflow_dev_template_deploys(aws, lambda_code):
    """The template `airflow-stack synth` renders for stacks/dev.yaml (its snapshot), with the
    fake Lambda standing in for both custom-resource functions."""
    snapshot = os.path.join(os.path.dirname(SERVER), "..", "snapshots",
                            "synth__dev_template_json.snap")
    if not os.path.exists(snapshot):
        pytest.skip("no synth snapshot")
    body = open(snapshot).read().split("---", 2)[2]
    key = "assets/" + "0" * 64 + ".zip"
    aws("s3").create_bucket(Bucket="assets")
    aws("s3").put_bucket_versioning(Bucket="assets",
                                    VersioningConfiguration={"Status": "Enabled"})
    version = aws("s3").copy_object(Bucket="assets", Key=key,
                                    CopySource={"Bucket": "code", "Key": "cr.zip"})["VersionId"]
    parameters = [{"ParameterKey": k, "ParameterValue": v} for k, v in {
        "AssetsBucket": "assets", "MigrationFunctionCodeKey": key,
        "SecretsFunctionCodeKey": key, "MigrationFunctionCodeVersion": version,
        "SecretsFunctionCodeVersion": version}.items()]
    cfn = aws("cloudformation")
    cfn.create_change_set(StackName="airflow-dev", ChangeSetName="c1", TemplateBody=body,
                          ChangeSetType="CREATE", Parameters=parameters,
                          Capabilities=["CAPABILITY_NAMED_IAM"])
    cfn.execute_change_set(StackName="airflow-dev", ChangeSetName="c1")
    stack, _ = wait(cfn, "airflow-dev")
    assert stack["StackStatus"] == "CREATE_COMPLETE", [
        e for e in events(cfn, "airflow-dev") if e[1].endswith("FAILED")]
    assert len(stack["Outputs"]) == len(json.loads(body)["Outputs"])
    assert all("<moto" not in o["OutputValue"] for o in stack["Outputs"])
    cfn.delete_stack(StackName="airflow-dev")
    stack, _ = wait(cfn, stack["StackId"])
    assert stack["StackStatus"] == "DELETE_COMPLETE", [
        e for e in events(cfn, stack["StackId"]) if e[1].endswith("FAILED")]
    skipped = {e[0] for e in events(cfn, stack["StackId"]) if e[1] == "DELETE_SKIPPED"}
    assert "FernetKeySecret" in skipped
    assert all(vpc["IsDefault"] for vpc in aws("ec2").describe_vpcs()["Vpcs"])
    assert not aws("ec2").describe_internet_gateways()["InternetGateways"]


# --------------------------------------------------------------------------------------
# Architectures: the bootstrap runs as on a Lambda machine of the function's architecture
# --------------------------------------------------------------------------------------

TRIPLES = {"x86_64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
LOGS_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Resource": "*",
    "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]}]})


def libc(arch):
    """An ELF executable of `arch` without a compiler: glibc's libc.so.6 prints its
    version banner when run. This host's, or the cross one (Debian libc6-arm64-cross,
    which tests/run-all.sh installs for qemu-user's sysroot)."""
    triple = TRIPLES[arch]
    for path in (f"/lib/{triple}/libc.so.6", f"/usr/{triple}/lib/libc.so.6"):
        if os.path.exists(path):
            return path
    raise AssertionError(f"no {arch} libc.so.6 here: install libc6-"
                         f"{'arm64' if arch == 'arm64' else 'amd64'}-cross (run-all.sh does)")


def binary_zip(path):
    """`path` as the zip's executable `bootstrap` (mode 0755)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        with open(path, "rb") as f:
            archive.writestr(info, f.read())
    return buffer.getvalue()


def lambda_output(aws, name):
    """Every line the function's runs wrote to its log group."""
    logs = aws("logs")
    group = f"/aws/lambda/{name}"
    lines = []
    for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]:
        lines += [e["message"] for e in logs.get_log_events(
            logGroupName=group, logStreamName=stream["logStreamName"])["events"]]
    return lines


def invoke(aws, name):
    response = aws("lambda").invoke(FunctionName=name, Payload=b"{}")
    return response.get("FunctionError"), json.loads(response["Payload"].read())


@pytest.mark.parametrize("function_arch,binary_arch", [
    ("arm64", "arm64"), ("x86_64", "x86_64"), ("x86_64", "arm64"), ("arm64", "x86_64")])
def test_the_bootstrap_runs_on_the_function_architecture(aws, function_arch, binary_arch):
    """A binary of the function's architecture runs (natively, or under qemu-user when it
    is not this host's); the other architecture fails as on AWS: Runtime.InvalidEntrypoint,
    "fork/exec /var/task/bootstrap: exec format error"."""
    aws("s3").create_bucket(Bucket="code")
    aws("s3").put_object(Bucket="code", Key="libc.zip", Body=binary_zip(libc(binary_arch)))
    role = aws("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]
    aws("iam").put_role_policy(RoleName="fn", PolicyName="logs", PolicyDocument=LOGS_POLICY)
    name = f"on-{function_arch}"
    aws("lambda").create_function(
        FunctionName=name, Runtime="provided.al2023", Handler="bootstrap", Role=role["Arn"],
        Timeout=30, Architectures=[function_arch],
        Code={"S3Bucket": "code", "S3Key": "libc.zip"})
    started = time.time()
    error, payload = invoke(aws, name)
    print(f"MEASURE {binary_arch} binary on an {function_arch} function: "
          f"{time.time() - started:.2f}s")
    output = lambda_output(aws, name)
    assert error == "Unhandled"
    if function_arch == binary_arch:
        # It ran: glibc's banner, then exit 0 without answering the Runtime API.
        assert payload == {"errorType": "Runtime.ExitError",
                           "errorMessage": "Runtime exited with error: exit status 0"}, payload
        assert any(line.startswith("GNU C Library") for line in output), output
    else:
        assert payload["errorType"] == "Runtime.InvalidEntrypoint", payload
        assert payload["errorMessage"].endswith(
            "Error: fork/exec /var/task/bootstrap: exec format error"), payload
        assert not any("GNU C Library" in line for line in output), output


def test_cloudformation_keeps_the_function_architecture(aws):
    """moto's CloudFormation model dropped Architectures (every function x86_64): created
    and updated through a stack, the function keeps the template's, and runs by it."""
    aws("s3").create_bucket(Bucket="code")
    aws("s3").put_object(Bucket="code", Key="arm.zip", Body=binary_zip(libc("arm64")))
    cfn = aws("cloudformation")

    def body(arch):
        props = {"Code": {"S3Bucket": "code", "S3Key": "arm.zip"}, "Handler": "bootstrap",
                 "Runtime": "provided.al2023", "Timeout": 30, "FunctionName": "arch-fn",
                 "Role": {"Fn::GetAtt": ["Role", "Arn"]}}
        if arch:
            props["Architectures"] = [arch]
        return json.dumps({"Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
                "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": "sts:AssumeRole",
                    "Principal": {"Service": "lambda.amazonaws.com"}}]}}},
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": props}}})

    def architectures():
        return aws("lambda").get_function_configuration(FunctionName="arch-fn")["Architectures"]

    stack, _ = deploy(cfn, "arch", body("arm64"), "CREATE")
    assert stack["StackStatus"] == "CREATE_COMPLETE", events(cfn, "arch")
    assert architectures() == ["arm64"]
    assert invoke(aws, "arch-fn")[1]["errorType"] == "Runtime.ExitError"  # it ran
    stack, _ = deploy(cfn, "arch", body(None), "UPDATE")  # left out: x86_64, as on AWS
    assert stack["StackStatus"] == "UPDATE_COMPLETE", events(cfn, "arch")
    assert architectures() == ["x86_64"]
    assert invoke(aws, "arch-fn")[1]["errorType"] == "Runtime.InvalidEntrypoint"
