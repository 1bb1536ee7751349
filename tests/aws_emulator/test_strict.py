"""The emulator is as strict as AWS where deploys and the end-to-end run depend on it:
IAM for registered identities and for the Lambdas it runs, one-off ECS tasks (network
paths, execution role, the image's database check, the schema model, their logs), the
order CloudFormation may create resources in, and stacks followed by id.

    $AIRFLOW_STACK_VENV/bin/python -m pytest tests/aws_emulator/test_strict.py -q
"""

import json
import struct
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from harness import (ACCOUNT, BOOTSTRAP, REGION, RUNNER, call, calls, client, deploy,
                     events, register, running_server, wait, zip_bytes)

BUCKET = "arn:aws:s3:::data"


def allow(action, resource="*", condition=None):
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def error_message(excinfo) -> str:
    return excinfo.value.response["Error"].get("Message", "")


# --------------------------------------------------------------------------------------
# Identities
# --------------------------------------------------------------------------------------


def test_identity_registration_is_validated(aws, endpoint):
    good = {"access_key_id": "AKIAEXAMPLE0000001", "name": "worker",
            "principal": f"arn:aws:sts::{ACCOUNT}:assumed-role/Worker/w",
            "policies": [{"Version": "2012-10-17", "Statement": [allow("s3:GetObject")]}]}
    status, body = call(endpoint, "POST", "/_emulator/identities", good)
    assert status == 200 and body["name"] == "worker" and body["statements"] == 1
    for change, message in [
        ({"access_key_id": "short"}, "is not an access key id"),
        ({"principal": "worker"}, "is not an ARN"),
        ({"policies": [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
                                       "Condition": {"DateLessThan": {"aws:CurrentTime": "x"}}}]}]},
         "not supported by the emulator"),
        ({"policies": "nope"}, "must be a list"),
    ]:
        status, body = call(endpoint, "POST", "/_emulator/identities", {**good, **change})
        assert status == 400 and message in body["error"], body
    bad = dict(good)
    del bad["policies"]
    status, body = call(endpoint, "POST", "/_emulator/identities", bad)
    assert status == 400 and "missing field(s): policies" in body["error"]
    listed = call(endpoint, "GET", "/_emulator/identities")[1]["identities"]
    assert [i["name"] for i in listed] == ["worker"]


def test_unregistered_keys_are_not_restricted_and_not_listed(aws, endpoint):
    aws("s3").create_bucket(Bucket="data")
    assert aws("s3").list_objects_v2(Bucket="data")["KeyCount"] == 0
    assert calls(endpoint) == []


def test_caller_identity_is_the_registered_principal(aws, endpoint):
    key = register(endpoint, "scheduler", allow("s3:GetObject", f"{BUCKET}/*"), role="Core")
    me = client(endpoint, "sts", key).get_caller_identity()
    assert me["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Core/scheduler"
    assert me["Account"] == ACCOUNT
    (entry,) = calls(endpoint, "scheduler")
    assert entry["operation"] == "GetCallerIdentity" and entry["allowed"]


# --------------------------------------------------------------------------------------
# S3
# --------------------------------------------------------------------------------------


def _bucket(aws):
    s3 = aws("s3")
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="dags/a.py", Body=b"dag")
    return s3


def test_prefix_conditioned_list_bucket_lists_but_head_bucket_is_denied(aws, endpoint):
    _bucket(aws)
    key = register(endpoint, "core",
                   allow("s3:ListBucket", BUCKET, {"StringLike": {"s3:prefix": ["dags", "dags/*"]}}),
                   allow("s3:GetObject", f"{BUCKET}/dags/*"), role="CoreTaskRole")
    s3 = client(endpoint, "s3", key)
    listed = s3.list_objects_v2(Bucket="data", Prefix="dags/")
    assert [o["Key"] for o in listed["Contents"]] == ["dags/a.py"]
    assert s3.list_objects(Bucket="data", Prefix="dags")["Contents"]
    for kwargs in ({"Prefix": "logs/"}, {}):
        with pytest.raises(ClientError) as e:
            s3.list_objects_v2(Bucket="data", **kwargs)
        assert error_code(e) == "AccessDenied"
        assert error_message(e) == (
            f"User: arn:aws:sts::{ACCOUNT}:assumed-role/CoreTaskRole/core is not authorized "
            f"to perform: s3:ListBucket on resource: {BUCKET} because no identity-based "
            "policy allows the s3:ListBucket action")
    # HeadBucket is s3:ListBucket with no s3:prefix in the request: denied (issue 11, #1).
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket="data")
    assert error_code(e) == "403"
    assert s3.get_object(Bucket="data", Key="dags/a.py")["Body"].read() == b"dag"
    head = [c for c in calls(endpoint, "core") if c["operation"] == "HeadBucket"]
    assert head == [{**head[0], "action": "s3:ListBucket", "resource": BUCKET,
                     "context": {}, "allowed": False}]
    assert "s3:prefix is not in the request context" in head[0]["reason"]
    listing = [c for c in calls(endpoint, "core") if c["operation"] == "ListObjectsV2"]
    assert listing[0]["context"] == {"s3:prefix": "dags/"} and listing[0]["allowed"]
    assert listing[2]["context"] == {} and not listing[2]["allowed"]


def test_missing_key_is_403_without_list_bucket_and_404_with_it(aws, endpoint):
    _bucket(aws)
    strict = register(endpoint, "strict",
                      allow("s3:ListBucket", BUCKET, {"StringLike": {"s3:prefix": "dags/*"}}),
                      allow("s3:GetObject", f"{BUCKET}/dags/*"))
    s3 = client(endpoint, "s3", strict)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="data", Key="dags/missing.py")
    assert error_code(e) == "403"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="data", Key="dags/missing.py")
    assert error_code(e) == "AccessDenied"
    missing = [c for c in calls(endpoint, "strict") if c["operation"].endswith("(missing key)")]
    assert [(c["operation"], c["allowed"]) for c in missing] == [
        ("HeadObject (missing key)", False), ("GetObject (missing key)", False)]
    assert "S3 answers 404 only to a caller allowed s3:ListBucket" in missing[0]["reason"]

    # StringLikeIfExists (the template's fix): HeadBucket passes, a missing key is a 404,
    # and listings stay limited to the prefixes.
    lenient = register(endpoint, "lenient",
                       allow("s3:ListBucket", BUCKET,
                             {"StringLikeIfExists": {"s3:prefix": ["dags", "dags/*"]}}),
                       allow("s3:GetObject", f"{BUCKET}/dags/*"))
    s3 = client(endpoint, "s3", lenient)
    s3.head_bucket(Bucket="data")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="data", Key="dags/missing.py")
    assert error_code(e) == "404"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="data", Key="dags/missing.py")
    assert error_code(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="data", Prefix="logs/")
    assert error_code(e) == "AccessDenied"
    # GetObject itself is still needed: a key outside the granted prefix is 403 either way.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="data", Key="logs/x")
    assert error_code(e) == "AccessDenied"


def test_s3_writes_copies_and_deletes(aws, endpoint):
    _bucket(aws)
    key = register(endpoint, "writer",
                   allow("s3:PutObject", f"{BUCKET}/logs/*"),
                   allow("s3:GetObject", f"{BUCKET}/dags/*"),
                   allow("s3:DeleteObject", f"{BUCKET}/logs/*"))
    s3 = client(endpoint, "s3", key)
    s3.put_object(Bucket="data", Key="logs/1.log", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="data", Key="dags/evil.py", Body=b"x")
    assert error_code(e) == "AccessDenied"
    s3.copy_object(Bucket="data", Key="logs/copy.py", CopySource={"Bucket": "data",
                                                                 "Key": "dags/a.py"})
    with pytest.raises(ClientError):  # the source needs s3:GetObject too
        s3.copy_object(Bucket="data", Key="logs/copy2", CopySource={"Bucket": "data",
                                                                   "Key": "logs/1.log"})
    upload = s3.create_multipart_upload(Bucket="data", Key="logs/big")
    part = s3.upload_part(Bucket="data", Key="logs/big", UploadId=upload["UploadId"],
                          PartNumber=1, Body=b"y" * 10)
    s3.complete_multipart_upload(Bucket="data", Key="logs/big", UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": [{"ETag": part["ETag"],
                                                             "PartNumber": 1}]})
    s3.delete_objects(Bucket="data", Delete={"Objects": [{"Key": "logs/1.log"}]})
    with pytest.raises(ClientError):
        s3.delete_objects(Bucket="data", Delete={"Objects": [{"Key": "logs/big"},
                                                             {"Key": "dags/a.py"}]})
    ops = [(c["operation"], c["action"], c["allowed"]) for c in calls(endpoint, "writer")]
    assert ("CreateMultipartUpload", "s3:PutObject", True) in ops
    assert ("UploadPart", "s3:PutObject", True) in ops
    assert ("CompleteMultipartUpload", "s3:PutObject", True) in ops
    assert ("CopyObject", "s3:GetObject", False) in ops
    assert ("DeleteObjects", "s3:DeleteObject", False) in ops


def test_unmodelled_operation_is_denied(aws, endpoint):
    _bucket(aws)
    key = register(endpoint, "greedy", allow("*"))
    with pytest.raises(ClientError) as e:
        client(endpoint, "s3", key).get_bucket_tagging(Bucket="data")
    assert error_code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        client(endpoint, "sqs", key).list_queues()
    assert error_code(e) == "AccessDeniedException"
    assert "not modelled by the emulator" in error_message(e)
    entries = calls(endpoint, "greedy")
    assert [(c["service"], c["operation"], c["allowed"]) for c in entries] == [
        ("s3", "GET bucket?tagging", False), ("sqs", "ListQueues", False)]
    assert all("not modelled by the emulator" in c["reason"] for c in entries)


# --------------------------------------------------------------------------------------
# Secrets Manager, DynamoDB, SNS, CloudWatch, Logs
# --------------------------------------------------------------------------------------


def test_secret_named_by_name_is_authorized_on_its_arn(aws, endpoint):
    arn = aws("secretsmanager").create_secret(Name="app/db", SecretString="v")["ARN"]
    key = register(endpoint, "reader", allow(["secretsmanager:GetSecretValue",
                                              "secretsmanager:DescribeSecret"], arn))
    sm = client(endpoint, "secretsmanager", key)
    assert sm.get_secret_value(SecretId="app/db")["SecretString"] == "v"
    assert sm.describe_secret(SecretId=arn)["Name"] == "app/db"
    with pytest.raises(ClientError) as e:
        sm.put_secret_value(SecretId="app/db", SecretString="w")
    assert error_code(e) == "AccessDeniedException"
    assert f"secretsmanager:PutSecretValue on resource: {arn}" in error_message(e)
    with pytest.raises(ClientError):
        sm.list_secrets()
    assert {c["resource"] for c in calls(endpoint, "reader")} == {arn, "*"}


def test_dynamodb_sns_and_cloudwatch(aws, endpoint):
    ddb = aws("dynamodb")
    table = ddb.create_table(TableName="state", BillingMode="PAY_PER_REQUEST",
                             KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                             AttributeDefinitions=[{"AttributeName": "pk",
                                                    "AttributeType": "S"}])
    table_arn = table["TableDescription"]["TableArn"]
    topic = aws("sns").create_topic(Name="alerts")["TopicArn"]
    key = register(endpoint, "scaler",
                   allow(["dynamodb:GetItem", "dynamodb:PutItem"], table_arn),
                   allow("cloudwatch:PutMetricData", "*",
                         {"StringEquals": {"cloudwatch:namespace": "AirflowStack"}}))
    me = lambda service: client(endpoint, service, key)  # noqa: E731
    me("dynamodb").put_item(TableName="state", Item={"pk": {"S": "a"}})
    assert me("dynamodb").get_item(TableName="state", Key={"pk": {"S": "a"}})["Item"]
    with pytest.raises(ClientError) as e:
        me("dynamodb").delete_item(TableName="state", Key={"pk": {"S": "a"}})
    assert error_code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        me("sns").publish(TopicArn=topic, Message="x")
    assert error_code(e) == "AuthorizationError"  # SNS's code for it
    assert f"sns:Publish on resource: {topic}" in error_message(e)
    # botocore speaks awsJson1.0 (query-compatible) to CloudWatch; see below for CBOR.
    metric = [{"MetricName": "m", "Value": 1.0}]
    with pytest.raises(ClientError) as e:
        me("cloudwatch").put_metric_data(Namespace="Other", MetricData=metric)
    assert error_code(e) == "AccessDenied"
    me("cloudwatch").put_metric_data(Namespace="AirflowStack", MetricData=metric)
    metrics = [c for c in calls(endpoint, "scaler") if c["action"] == "cloudwatch:PutMetricData"]
    assert [(c["context"], c["allowed"]) for c in metrics] == [
        ({"cloudwatch:namespace": "Other"}, False),
        ({"cloudwatch:namespace": "AirflowStack"}, True)]


def test_log_streams_and_groups(aws, endpoint):
    logs = aws("logs")
    logs.create_log_group(logGroupName="/app/migrate")
    logs.create_log_stream(logGroupName="/app/migrate", logStreamName="s1")
    group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/app/migrate"
    # The GetAtt Arn form (":*") covers the streams; the bare group ARN does not.
    good = register(endpoint, "good", allow(["logs:GetLogEvents", "logs:DescribeLogStreams"],
                                            f"{group}:*"))
    bare = register(endpoint, "bare", allow(["logs:GetLogEvents", "logs:DescribeLogStreams"],
                                            group))
    assert client(endpoint, "logs", good).get_log_events(
        logGroupName="/app/migrate", logStreamName="s1")["events"] == []
    assert client(endpoint, "logs", good).describe_log_streams(logGroupName="/app/migrate")
    for op in ("get_log_events", "describe_log_streams"):
        kwargs = {"logGroupName": "/app/migrate"}
        if op == "get_log_events":
            kwargs["logStreamName"] = "s1"
        with pytest.raises(ClientError) as e:
            getattr(client(endpoint, "logs", bare), op)(**kwargs)
        assert error_code(e) == "AccessDeniedException"
    resources = {c["operation"]: c["resource"] for c in calls(endpoint, "good")}
    assert resources == {"GetLogEvents": f"{group}:log-stream:s1",
                         "DescribeLogStreams": f"{group}:*"}


# --------------------------------------------------------------------------------------
# ECS one-off tasks
# --------------------------------------------------------------------------------------


def _network(ec2, *, public=True, nat=False):
    """A VPC with a subnet for tasks: public (route to an attached internet gateway) or
    private (route to a NAT gateway in a public subnet when `nat`, else none)."""
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    public_subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    public_rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=public_rt, SubnetId=public_subnet)
    group = ec2.create_security_group(GroupName="task", Description="t", VpcId=vpc)["GroupId"]
    if public:
        return public_subnet, group
    private = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.2.0/24")["Subnet"]["SubnetId"]
    private_rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=private_rt, SubnetId=private)
    if nat:
        eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
        gateway = ec2.create_nat_gateway(SubnetId=public_subnet, AllocationId=eip)
        ec2.create_route(RouteTableId=private_rt, DestinationCidrBlock="0.0.0.0/0",
                         NatGatewayId=gateway["NatGateway"]["NatGatewayId"])
    return private, group


def _execution_role(aws, statements):
    iam = aws("iam")
    arn = iam.create_role(RoleName="exec", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]})
    )["Role"]["Arn"]
    if statements:
        iam.put_role_policy(RoleName="exec", PolicyName="start", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": statements}))
    return arn


def _task_definition(aws, family, *, execution_role=None, image="busybox", logs=True,
                     secrets=None, command=None):
    container = {"name": "main", "image": image, "essential": True, "memory": 512,
                 "command": command or ["true"]}
    if logs:
        container["logConfiguration"] = {"logDriver": "awslogs", "options": {
            "awslogs-group": "/tasks", "awslogs-region": REGION,
            "awslogs-stream-prefix": "job"}}
    if secrets:
        container["secrets"] = secrets
    kwargs = {"executionRoleArn": execution_role} if execution_role else {}
    return aws("ecs").register_task_definition(
        family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
        memory="512", containerDefinitions=[container], **kwargs)["taskDefinition"]


def _run(ecs, definition, subnet, group, public=True, cluster="jobs"):
    task = ecs.run_task(cluster=cluster, taskDefinition=definition, launchType="FARGATE",
                        networkConfiguration={"awsvpcConfiguration": {
                            "subnets": [subnet], "securityGroups": [group],
                            "assignPublicIp": "ENABLED" if public else "DISABLED"}},
                        startedBy="test")["tasks"][0]
    (stopped,) = ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"]])["tasks"]
    assert stopped["lastStatus"] == "STOPPED"
    return stopped


def _log_lines(aws, task, prefix="job", container="main", group="/tasks"):
    stream = f"{prefix}/{container}/{task['taskArn'].rsplit('/', 1)[-1]}"
    return [e["message"] for e in aws("logs").get_log_events(
        logGroupName=group, logStreamName=stream, startFromHead=True)["events"]]


LOGS_STATEMENT = allow(["logs:CreateLogStream", "logs:PutLogEvents"],
                       f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/tasks:*")


def test_run_task_needs_pass_role_and_its_cluster(aws, endpoint):
    aws("ecs").create_cluster(clusterName="jobs")
    aws("ecs").create_cluster(clusterName="other")
    aws("logs").create_log_group(logGroupName="/tasks")
    role = _execution_role(aws, [LOGS_STATEMENT])
    definition = _task_definition(aws, "job", execution_role=role)
    subnet, group = _network(aws("ec2"))
    cluster_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/jobs"
    run = allow("ecs:RunTask", definition["taskDefinitionArn"],
                {"ArnEquals": {"ecs:cluster": cluster_arn}})
    describe = allow("ecs:DescribeTasks", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/jobs/*")
    no_pass = client(endpoint, "ecs", register(endpoint, "no-pass", run, describe))
    with pytest.raises(ClientError) as e:
        _run(no_pass, "job", subnet, group)
    assert error_code(e) == "AccessDeniedException"
    assert f"iam:PassRole on resource: {role}" in error_message(e)
    entries = calls(endpoint, "no-pass")
    assert [(c["action"], c["allowed"]) for c in entries] == [("ecs:RunTask", True),
                                                              ("iam:PassRole", False)]
    assert entries[1]["context"] == {"iam:PassedToService": "ecs-tasks.amazonaws.com"}

    passing = client(endpoint, "ecs", register(
        endpoint, "passing", run, describe,
        allow("iam:PassRole", role,
              {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}})))
    stopped = _run(passing, "job", subnet, group)  # family name: resolved to its ARN
    assert stopped["containers"][0]["exitCode"] == 0
    with pytest.raises(ClientError) as e:
        _run(passing, "job", subnet, group, cluster="other")  # ecs:cluster condition
    assert "ecs:RunTask" in error_message(e)


def test_the_scalers_ecs_calls(aws, endpoint):
    """The scaler role's statement shapes (src/stack/monitoring.rs): ListTasks on "*"
    pinned by ecs:cluster, services and tasks by ARN."""
    ecs = aws("ecs")
    ecs.create_cluster(clusterName="jobs")
    ecs.create_cluster(clusterName="other")
    _task_definition(aws, "job", logs=False)
    ecs.create_service(cluster="jobs", serviceName="worker", taskDefinition="job",
                       desiredCount=1)
    subnet, group = _network(aws("ec2"))
    task_arn = _run(ecs, "job", subnet, group)["taskArn"]
    base = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
    me = client(endpoint, "ecs", register(
        endpoint, "scaler",
        allow(["ecs:DescribeServices", "ecs:UpdateService"], f"{base}:service/jobs/worker"),
        allow("ecs:ListTasks", "*", {"ArnEquals": {"ecs:cluster": f"{base}:cluster/jobs"}}),
        allow(["ecs:DescribeTasks", "ecs:UpdateTaskProtection"], f"{base}:task/jobs/*")))
    assert me.describe_services(cluster="jobs", services=["worker"])["services"]
    me.update_service(cluster="jobs", service="worker", desiredCount=2)
    me.list_tasks(cluster="jobs", serviceName="worker", desiredStatus="RUNNING")
    me.describe_tasks(cluster="jobs", tasks=[task_arn])
    try:
        me.update_task_protection(cluster="jobs", tasks=[task_arn], protectionEnabled=True,
                                  expiresInMinutes=5)
    except ClientError as e:  # moto 5.2.5 answers 500 for it; authorization is the point
        assert e.response["Error"]["Code"] != "AccessDeniedException", e
    with pytest.raises(ClientError) as e:
        me.list_tasks(cluster="other")
    assert error_code(e) == "AccessDeniedException"
    entries = [(c["operation"], c["resource"], c["allowed"]) for c in calls(endpoint, "scaler")]
    assert entries == [
        ("DescribeServices", f"{base}:service/jobs/worker", True),
        ("UpdateService", f"{base}:service/jobs/worker", True),
        ("ListTasks", "*", True),
        ("DescribeTasks", task_arn, True),
        ("UpdateTaskProtection", task_arn, True),
        ("ListTasks", "*", False)]


def test_task_output_goes_to_its_awslogs_stream(aws, endpoint):
    aws("ecs").create_cluster(clusterName="jobs")
    aws("logs").create_log_group(logGroupName="/tasks")
    role = _execution_role(aws, [LOGS_STATEMENT])
    _task_definition(aws, "job", execution_role=role)
    subnet, group = _network(aws("ec2"))
    assert call(endpoint, "POST", "/_emulator/ecs-task-output",
                {"lines": ["migrating", "boom"]})[0] == 200
    assert call(endpoint, "POST", "/_emulator/ecs-task-exit/3", {})[0] == 200
    stopped = _run(aws("ecs"), "job", subnet, group)
    assert stopped["containers"][0]["exitCode"] == 3
    assert stopped["containers"][0]["name"] == "main"
    assert stopped["stoppedReason"] == "Essential container in task exited"
    assert _log_lines(aws, stopped) == ["migrating", "boom"]
    # Both applied once: the next task exits 0 and says what was emulated.
    stopped = _run(aws("ecs"), "job", subnet, group)
    assert stopped["containers"][0]["exitCode"] == 0
    assert _log_lines(aws, stopped)[-1] == "[emulated] one-off task job: exit 0"
    assert call(endpoint, "POST", "/_emulator/ecs-task-output", {"lines": "x"})[0] == 400


def test_execution_role_must_read_the_secrets_and_write_the_logs(aws, endpoint):
    aws("ecs").create_cluster(clusterName="jobs")
    aws("logs").create_log_group(logGroupName="/tasks")
    secret = aws("secretsmanager").create_secret(
        Name="db", SecretString=json.dumps({"sql_alchemy_conn": "postgresql://x"}))["ARN"]
    subnet, group = _network(aws("ec2"))
    secrets = [{"name": "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                "valueFrom": f"{secret}:sql_alchemy_conn::"}]
    role = _execution_role(aws, [LOGS_STATEMENT])  # no GetSecretValue
    _task_definition(aws, "job", execution_role=role, secrets=secrets)
    stopped = _run(aws("ecs"), "job", subnet, group)
    assert stopped["stoppedReason"].startswith("ResourceInitializationError: unable to pull "
                                               "secrets or registry auth")
    assert f"secretsmanager:GetSecretValue on resource: {secret}" in stopped["stoppedReason"]
    assert "exitCode" not in stopped["containers"][0]
    assert stopped["stopCode"] == "TaskFailedToStart"
    denied = [c for c in calls(endpoint) if not c["allowed"]]
    assert denied[0]["identity"] == "ecs-task-execution:exec"

    aws("iam").put_role_policy(RoleName="exec", PolicyName="secrets", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [allow("secretsmanager:GetSecretValue", secret)]}))
    assert _run(aws("ecs"), "job", subnet, group)["containers"][0]["exitCode"] == 0
    # A JSON key the secret does not have fails like ECS does.
    _task_definition(aws, "job", execution_role=role, secrets=[
        {"name": "X", "valueFrom": f"{secret}:no_such_key::"}])
    stopped = _run(aws("ecs"), "job", subnet, group)
    assert "did not contain json key no_such_key" in stopped["stoppedReason"]
    # And the logs: without PutLogEvents the container cannot start.
    aws("iam").delete_role_policy(RoleName="exec", PolicyName="start")
    _task_definition(aws, "job", execution_role=role, secrets=secrets)
    stopped = _run(aws("ecs"), "job", subnet, group)
    assert stopped["stoppedReason"].startswith("CannotStartContainerError")
    assert "logs:CreateLogStream" in stopped["stoppedReason"]


def test_tasks_need_a_route_out(aws, endpoint):
    aws("ecs").create_cluster(clusterName="jobs")
    _task_definition(aws, "job", logs=False)
    ec2 = aws("ec2")
    subnet, group = _network(ec2, public=False, nat=False)
    stopped = _run(aws("ecs"), "job", subnet, group, public=False)
    assert stopped["stoppedReason"].startswith("CannotPullContainerError")
    assert f"from subnet {subnet} (rtb-" in stopped["stoppedReason"]
    assert "no 0.0.0.0/0 route to a NAT gateway" in stopped["stoppedReason"]
    # A public subnet without a public IP does not reach the internet either.
    public_subnet, group = _network(ec2, public=True)
    stopped = _run(aws("ecs"), "job", public_subnet, group, public=False)
    assert "no 0.0.0.0/0 route to a NAT gateway" in stopped["stoppedReason"]
    assert _run(aws("ecs"), "job", public_subnet, group)["containers"][0]["exitCode"] == 0
    private, group = _network(ec2, public=False, nat=True)
    assert _run(aws("ecs"), "job", private, group,
                public=False)["containers"][0]["exitCode"] == 0
    # With a public IP, a private subnet (no internet gateway route) is no better.
    stopped = _run(aws("ecs"), "job", subnet, group, public=True)
    assert "no 0.0.0.0/0 route to an internet gateway" in stopped["stoppedReason"]


def test_a_migration_to_an_older_version_fails_like_alembic(aws, endpoint):
    aws("ecs").create_cluster(clusterName="jobs")
    aws("logs").create_log_group(logGroupName="/tasks")
    role = _execution_role(aws, [LOGS_STATEMENT])
    subnet, group = _network(aws("ec2"))

    def migrate(version):
        _task_definition(aws, "x-migrate", execution_role=role,
                         image=f"apache/airflow:{version}-python3.12",
                         command=["bash", "-c", "airflow db migrate"])
        return _run(aws("ecs"), "x-migrate", subnet, group)

    assert migrate("3.2.0")["containers"][0]["exitCode"] == 0
    assert migrate("3.3.2")["containers"][0]["exitCode"] == 0
    schema = call(endpoint, "GET", "/_emulator/schema")[1]["schema"]
    assert list(schema.values()) == [{"version": "3.3.2", "revision": "d2f4e1b3c5a7"}]
    # 3.3.0 has the same head as 3.3.2 (airflow/utils/db.py): nothing to undo, it works.
    assert migrate("3.3.0")["containers"][0]["exitCode"] == 0
    # 3.2.0 does not know 3.3's head: Alembic's error, exit 1.
    stopped = migrate("3.2.0")
    assert stopped["containers"][0]["exitCode"] == 1
    lines = _log_lines(aws, stopped)
    assert lines[-1] == ("alembic.util.exc.CommandError: Can't locate revision identified by "
                         "'d2f4e1b3c5a7'")
    assert any(line.startswith("[emulated] this database was migrated by Airflow 3.3.2")
               for line in lines)
    # Numeric per dotted part: 3.10.0 is newer than 3.9.0.
    assert migrate("3.10.0")["containers"][0]["exitCode"] == 0
    assert migrate("3.9.0")["containers"][0]["exitCode"] == 1


# --------------------------------------------------------------------------------------
# Lambdas run as their role
# --------------------------------------------------------------------------------------


def _failure(cfn, stack):
    return next(e for e in events(cfn, stack) if e[1].endswith("_FAILED") and e[0] != stack)


def test_custom_resource_lambda_runs_with_its_role(aws, endpoint, lambda_code):
    from test_emulator import template
    cfn, record = aws("cloudformation"), lambda_code[2]
    stack, _ = deploy(cfn, "norole", template(record, may_put_secret=False), "CREATE")
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    logical, status, reason = _failure(cfn, "norole")
    assert (logical, status) == ("Init", "CREATE_FAILED")
    assert "PutSecretValue: An error occurred (AccessDeniedException)" in reason
    assert "is not authorized to perform: secretsmanager:PutSecretValue" in reason
    assert ":assumed-role/norole-Role-" in reason
    (denied,) = [c for c in calls(endpoint) if not c["allowed"]]
    assert denied["identity"].startswith("norole-Fn-")
    assert denied["action"] == "secretsmanager:PutSecretValue"

    stack, _ = deploy(cfn, "withrole", template(record), "CREATE")
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    deadline = time.time() + 10  # log delivery follows the response, as on AWS
    while time.time() < deadline:
        mine = [(c["operation"], c["action"], c["allowed"]) for c in calls(endpoint)
                if c["identity"].startswith("withrole-Fn-")]
        if ("Lambda log delivery", "logs:PutLogEvents", True) in mine:
            break
        time.sleep(0.1)
    assert ("PutSecretValue", "secretsmanager:PutSecretValue", True) in mine
    assert ("Lambda log delivery", "logs:PutLogEvents", True) in mine


def _function_stack(aws, managed_policy):
    aws("s3").create_bucket(Bucket="code")
    aws("s3").put_object(Bucket="code", Key="echo.zip", Body=zip_bytes(BOOTSTRAP))
    body = json.dumps({"Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole",
                 "Principal": {"Service": "lambda.amazonaws.com"}}]},
            "ManagedPolicyArns": [managed_policy]}},
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
            "FunctionName": "echo", "Code": {"S3Bucket": "code", "S3Key": "echo.zip"},
            "Handler": "bootstrap", "Runtime": "provided.al2023", "Timeout": 30,
            "Role": {"Fn::GetAtt": ["Role", "Arn"]}}}}})
    cfn = aws("cloudformation")
    cfn.create_stack(StackName="fn", TemplateBody=body, Capabilities=["CAPABILITY_IAM"])
    assert wait(cfn, "fn")[0]["StackStatus"] == "CREATE_COMPLETE"


def test_lambda_roles_managed_policies(aws, endpoint):
    _function_stack(aws, "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
    answer = aws("lambda").invoke(FunctionName="echo", Payload=b'{"a": 1}')
    assert "FunctionError" not in answer
    # Its log delivery was allowed by the managed policy's logs statements.
    delivery = [c for c in calls(endpoint, "echo") if c["operation"] == "Lambda log delivery"]
    assert delivery and all(c["allowed"] for c in delivery)
    assert "AWSLambdaVPCAccessExecutionPermissions" in delivery[0]["reason"]


def test_unknown_aws_managed_policy_fails_the_invocation(aws, endpoint):
    _function_stack(aws, "arn:aws:iam::aws:policy/AdministratorAccess")
    answer = aws("lambda").invoke(FunctionName="echo", Payload=b"{}")
    assert answer["FunctionError"] == "Unhandled"
    error = json.loads(answer["Payload"].read())
    assert error["errorType"] == "Emulator.RoleError"
    assert "AWS managed policy arn:aws:iam::aws:policy/AdministratorAccess" in \
        error["errorMessage"]


def test_lambda_invoke_is_authorized_on_the_function_arn(aws, endpoint, lambda_code):
    bucket, key, _ = lambda_code
    role = aws("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    aws("lambda").create_function(FunctionName="echo", Runtime="provided.al2023",
                                  Handler="bootstrap", Role=role, Timeout=30,
                                  Code={"S3Bucket": bucket, "S3Key": key})
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:echo"
    caller = client(endpoint, "lambda", register(endpoint, "caller",
                                                 allow("lambda:InvokeFunction", arn)))
    assert caller.invoke(FunctionName="echo", InvocationType="Event")["StatusCode"] == 202
    assert caller.invoke(FunctionName=arn, InvocationType="Event")["StatusCode"] == 202
    with pytest.raises(ClientError) as e:
        caller.invoke(FunctionName="echo", Qualifier="prod", InvocationType="Event")
    assert error_code(e) == "AccessDeniedException"
    assert {c["resource"] for c in calls(endpoint, "caller")} == {arn, f"{arn}:prod"}


# --------------------------------------------------------------------------------------
# Creation order and network paths of a stack's one-off task
# --------------------------------------------------------------------------------------


def network_template(depends_on, version="3.3.2", db_type="AWS::RDS::DBCluster"):
    """A custom resource that runs a migration-like task (the RUNNER Lambda) in a public
    subnet, with a database (a stub DBCluster) behind a security group whose ingress
    rule from the task's group is a separate resource: the dev template's shape."""
    sub = lambda text: {"Fn::Sub": text}  # noqa: E731
    statements = [
        allow("ecs:RunTask", {"Ref": "TaskDef"},
              {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": ["Cluster", "Arn"]}}}),
        allow("ecs:DescribeTasks", sub("arn:aws:ecs:${AWS::Region}:${AWS::AccountId}:"
                                       "task/${Cluster}/*")),
        allow("iam:PassRole", {"Fn::GetAtt": ["ExecRole", "Arn"]}),
        allow("logs:GetLogEvents", {"Fn::GetAtt": ["TaskLogs", "Arn"]}),
        allow("logs:CreateLogGroup", "*"),
        allow(["logs:CreateLogStream", "logs:PutLogEvents"],
              sub("arn:aws:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/*:*")),
    ]
    trust = lambda service: {"Version": "2012-10-17", "Statement": [  # noqa: E731
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}}]}
    resources = {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.7.0.0/16"}},
        "Igw": {"Type": "AWS::EC2::InternetGateway"},
        "IgwAttachment": {"Type": "AWS::EC2::VPCGatewayAttachment", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "InternetGatewayId": {"Ref": "Igw"}}},
        "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.7.1.0/24",
            "AvailabilityZone": f"{REGION}a"}},
        "RouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}},
        "DefaultRoute": {"Type": "AWS::EC2::Route", "DependsOn": "IgwAttachment",
                         "Properties": {"RouteTableId": {"Ref": "RouteTable"},
                                        "DestinationCidrBlock": "0.0.0.0/0",
                                        "GatewayId": {"Ref": "Igw"}}},
        "SubnetRoutes": {"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": {
            "SubnetId": {"Ref": "Subnet"}, "RouteTableId": {"Ref": "RouteTable"}}},
        "TaskSg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": "migration", "VpcId": {"Ref": "Vpc"}}},
        "DbSg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": "database", "VpcId": {"Ref": "Vpc"}}},
        "DbFromTask": {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
            "GroupId": {"Fn::GetAtt": ["DbSg", "GroupId"]}, "IpProtocol": "tcp",
            "FromPort": 5432, "ToPort": 5432,
            "SourceSecurityGroupId": {"Fn::GetAtt": ["TaskSg", "GroupId"]}}},
        "Db": {"Type": "AWS::RDS::DBCluster", "Properties": {
            "Engine": "aurora-postgresql", "Port": 5432,
            "VpcSecurityGroupIds": [{"Fn::GetAtt": ["DbSg", "GroupId"]}]}}
        if db_type == "AWS::RDS::DBCluster" else
        {"Type": "AWS::RDS::DBInstance", "Properties": {  # moto's own model, as in dev
            "Engine": "postgres", "DBInstanceClass": "db.t4g.micro", "AllocatedStorage": "20",
            "MasterUsername": "airflow", "MasterUserPassword": "not-a-secret-1", "Port": "5432",
            "VPCSecurityGroups": [{"Fn::GetAtt": ["DbSg", "GroupId"]}]}},
        "DbUrl": {"Type": "AWS::SecretsManager::Secret", "Properties": {
            "SecretString": json.dumps({"sql_alchemy_conn": "postgresql://db/airflow"})}},
        "TaskLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": sub("/emulated/${AWS::StackName}/migrate")}},
        "ExecRole": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": trust("ecs-tasks.amazonaws.com"),
            "Policies": [{"PolicyName": "start", "PolicyDocument": {
                "Version": "2012-10-17", "Statement": [
                    allow("secretsmanager:GetSecretValue", {"Ref": "DbUrl"}),
                    allow(["logs:CreateLogStream", "logs:PutLogEvents"],
                          {"Fn::GetAtt": ["TaskLogs", "Arn"]})]}}]}},
        "Cluster": {"Type": "AWS::ECS::Cluster"},
        "TaskDef": {"Type": "AWS::ECS::TaskDefinition", "Properties": {
            "Family": sub("${AWS::StackName}-migrate"), "Cpu": "256", "Memory": "512",
            "NetworkMode": "awsvpc", "RequiresCompatibilities": ["FARGATE"],
            "ExecutionRoleArn": {"Fn::GetAtt": ["ExecRole", "Arn"]},
            "ContainerDefinitions": [{
                "Name": "migrate", "Image": f"apache/airflow:{version}-python3.12",
                "Essential": True, "Command": ["bash", "-c", "airflow db migrate"],
                "Secrets": [{"Name": "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                             "ValueFrom": {"Fn::Join": ["", [{"Ref": "DbUrl"},
                                                             ":sql_alchemy_conn::"]]}}],
                "LogConfiguration": {"LogDriver": "awslogs", "Options": {
                    "awslogs-group": {"Ref": "TaskLogs"}, "awslogs-region": REGION,
                    "awslogs-stream-prefix": "migrate"}}}]}},
        "RunnerRole": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": trust("lambda.amazonaws.com"),
            "Policies": [{"PolicyName": "run", "PolicyDocument": {
                "Version": "2012-10-17", "Statement": statements}}]}},
        "Runner": {"Type": "AWS::Lambda::Function", "Properties": {
            "Code": {"S3Bucket": "code", "S3Key": "runner.zip"}, "Handler": "bootstrap",
            "Runtime": "provided.al2023", "Timeout": 60,
            "Role": {"Fn::GetAtt": ["RunnerRole", "Arn"]}}},
        "Migration": {"Type": "Custom::Migration", "DependsOn": depends_on, "Properties": {
            "ServiceToken": {"Fn::GetAtt": ["Runner", "Arn"]}, "AirflowVersion": version,
            "Cluster": {"Ref": "Cluster"}, "TaskDefinition": {"Ref": "TaskDef"},
            "Subnets": [{"Ref": "Subnet"}],
            "SecurityGroups": [{"Fn::GetAtt": ["TaskSg", "GroupId"]}],
            "DatabaseHost": {"Fn::GetAtt": ["Db", "Endpoint.Address"]},
            "AssignPublicIp": "ENABLED", "LogGroup": {"Ref": "TaskLogs"},
            "StreamPrefix": "migrate"}},
    }
    return json.dumps({"Resources": resources})


@pytest.fixture
def runner(aws):
    aws("s3").create_bucket(Bucket="code")
    aws("s3").put_object(Bucket="code", Key="runner.zip", Body=zip_bytes(RUNNER))


ROUTES = ["DefaultRoute", "SubnetRoutes"]


@pytest.mark.parametrize("db_type", ["AWS::RDS::DBCluster", "AWS::RDS::DBInstance"])
def test_missing_depends_on_the_database_ingress_rule_fails(aws, endpoint, runner, db_type):
    cfn = aws("cloudformation")
    stack, _ = deploy(cfn, "race", network_template(ROUTES, db_type=db_type), "CREATE")
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    logical, status, reason = _failure(cfn, "race")
    assert (logical, status) == ("Migration", "CREATE_FAILED")
    assert reason.startswith("exit 1; task stopped: Essential container in task exited")
    assert "ERROR! Maximum number of retries (20) reached." in reason
    assert "allows tcp port 5432 from the task's security group(s)" in reason
    assert "(DbSg) of Db" in reason and "(TaskSg)" in reason
    assert "not created yet when the task ran" in reason
    assert "DbFromTask (AWS::EC2::SecurityGroupIngress)" in reason
    order = [e[0] for e in events(cfn, "race") if e[1] == "CREATE_COMPLETE"]
    assert "DbFromTask" not in order  # never created: the custom resource ran first


def test_missing_depends_on_the_routes_fails(aws, endpoint, runner):
    cfn = aws("cloudformation")
    stack, _ = deploy(cfn, "noroute", network_template(depends_on=["DbFromTask"]), "CREATE")
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    logical, _, reason = _failure(cfn, "noroute")
    assert logical == "Migration"
    assert "exit None; task stopped: ResourceInitializationError: unable to pull secrets" \
        in reason
    assert "no 0.0.0.0/0 route to an internet gateway attached to" in reason
    assert "not created yet when the task ran" in reason
    assert "DefaultRoute (AWS::EC2::Route)" in reason
    assert "SubnetRoutes (AWS::EC2::SubnetRouteTableAssociation)" in reason


def test_with_the_depends_on_the_migration_runs(aws, endpoint, runner):
    cfn = aws("cloudformation")
    stack, _ = deploy(cfn, "ordered", network_template(ROUTES + ["DbFromTask"],
                                                       db_type="AWS::RDS::DBInstance"),
                      "CREATE")
    assert stack["StackStatus"] == "CREATE_COMPLETE", _failure(cfn, "ordered")
    order = [e[0] for e in events(cfn, "ordered") if e[1] == "CREATE_COMPLETE"]
    assert order.index("DbFromTask") < order.index("Migration")
    # Unrelated resources still come after the custom resource: the order is adversarial.
    runner_calls = [c for c in calls(endpoint) if c["identity"].startswith("ordered-Runner-")]
    assert {(c["action"], c["allowed"]) for c in runner_calls} >= {
        ("ecs:RunTask", True), ("iam:PassRole", True), ("ecs:DescribeTasks", True)}
    execution = [c for c in calls(endpoint) if c["identity"].startswith("ecs-task-execution:")]
    assert {c["action"] for c in execution} == {"secretsmanager:GetSecretValue",
                                                "logs:CreateLogStream", "logs:PutLogEvents"}
    assert all(c["allowed"] for c in execution)

    # An update back to an older Airflow (a rollback's replay) fails like Alembic does.
    newer, _ = deploy(cfn, "ordered", network_template(
        ROUTES + ["DbFromTask"], "3.4.0", db_type="AWS::RDS::DBInstance"), "UPDATE")
    assert newer["StackStatus"] == "UPDATE_COMPLETE", _failure(cfn, "ordered")
    older, _ = deploy(cfn, "ordered", network_template(
        ROUTES + ["DbFromTask"], "3.3.2", db_type="AWS::RDS::DBInstance"), "UPDATE")
    assert older["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    failures = [e for e in events(cfn, "ordered") if e[1] == "UPDATE_FAILED"]
    assert "alembic.util.exc.CommandError: Can't locate revision identified by" in \
        failures[0][2]


def test_fail_resource_hook_fails_the_next_change_once(aws, endpoint):
    cfn = aws("cloudformation")
    body = lambda n: json.dumps({"Resources": {  # noqa: E731
        "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": n}}}})
    cfn.create_stack(StackName="hook", TemplateBody=body(7))
    assert wait(cfn, "hook")[0]["StackStatus"] == "CREATE_COMPLETE"
    assert call(endpoint, "POST", "/_emulator/fail-resource",
                {"logical_id": "Logs", "reason": "injected"})[0] == 200
    cfn.update_stack(StackName="hook", TemplateBody=body(14))
    assert wait(cfn, "hook")[0]["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert ("Logs", "UPDATE_FAILED", "injected") in events(cfn, "hook")
    cfn.update_stack(StackName="hook", TemplateBody=body(14))  # once only
    assert wait(cfn, "hook")[0]["StackStatus"] == "UPDATE_COMPLETE"
    assert call(endpoint, "POST", "/_emulator/fail-resource", {"reason": "x"})[0] == 400


def test_custom_resources_come_first_in_the_order():
    import server
    resources = {
        "Route": {"Type": "AWS::EC2::Route", "Properties": {"RouteTableId": {"Ref": "Rt"}}},
        "Rt": {"Type": "AWS::EC2::RouteTable"},
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Role": {"Ref": "Role"}}},
        "Role": {"Type": "AWS::IAM::Role"},
        "Ingress": {"Type": "AWS::EC2::SecurityGroupIngress"},
        "Second": {"Type": "Custom::B", "DependsOn": "First",
                   "Properties": {"ServiceToken": {"Fn::GetAtt": ["Fn", "Arn"]}}},
        "First": {"Type": "Custom::A", "Properties": {"ServiceToken": {"Ref": "Fn"}}},
    }
    assert server.dependency_order(resources) == [
        "Role", "Fn", "First", "Second", "Rt", "Route", "Ingress"]


# --------------------------------------------------------------------------------------
# Stacks by id
# --------------------------------------------------------------------------------------


def test_a_deleted_stack_answers_by_id_only(aws):
    cfn = aws("cloudformation")
    body = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})
    cfn.create_stack(StackName="gone", TemplateBody=body)
    stack, _ = wait(cfn, "gone")
    stack_id = stack["StackId"]
    cfn.delete_stack(StackName="gone")
    assert wait(cfn, stack_id)[0]["StackStatus"] == "DELETE_COMPLETE"
    for call_by_name in (lambda: cfn.describe_stacks(StackName="gone"),
                         lambda: cfn.describe_stack_events(StackName="gone"),
                         lambda: cfn.list_stack_resources(StackName="gone")):
        with pytest.raises(ClientError) as e:
            call_by_name()
        assert error_code(e) == "ValidationError"
        assert error_message(e) == "Stack with id gone does not exist"
    assert events(cfn, stack_id)[-1] == ("gone", "DELETE_COMPLETE", None)
    assert cfn.list_stack_resources(StackName=stack_id)["StackResourceSummaries"] == []
    # The same name again is a new stack with a new id; the old id stays deleted.
    cfn.create_stack(StackName="gone", TemplateBody=body)
    again, _ = wait(cfn, "gone")
    assert again["StackId"] != stack_id and again["StackStatus"] == "CREATE_COMPLETE"
    assert cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == \
        "DELETE_COMPLETE"


# --------------------------------------------------------------------------------------
# --host
# --------------------------------------------------------------------------------------


def test_host_option_and_the_lambda_endpoint(tmp_path):
    """Bound to another address (as inside a network namespace), the server answers
    there and gives its Lambdas that address, not 127.0.0.1."""
    with running_server(tmp_path / "server.log", "--host", "127.0.0.2") as port:
        endpoint = f"http://127.0.0.2:{port}"
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=2)
        s3 = client(endpoint, "s3")
        s3.create_bucket(Bucket="code")
        s3.put_object(Bucket="code", Key="echo.zip", Body=zip_bytes(BOOTSTRAP))
        iam = client(endpoint, "iam")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam = client(endpoint, "lambda")
        lam.create_function(FunctionName="echo", Runtime="provided.al2023",
                            Handler="bootstrap", Role=role, Timeout=30,
                            Code={"S3Bucket": "code", "S3Key": "echo.zip"})
        payload = json.loads(lam.invoke(FunctionName="echo", Payload=b"{}")["Payload"].read())
        assert payload["endpoint"] == endpoint


# --------------------------------------------------------------------------------------
# The CBOR decoder (Smithy RPC v2, the Rust SDK's CloudWatch protocol)
# --------------------------------------------------------------------------------------


def _cbor(value) -> bytes:
    """A small CBOR encoder for the test's request (text, lists, dicts, floats, ints)."""
    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        for size, info in ((1, 24), (2, 25), (4, 26), (8, 27)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, int):
        return head(0, value)
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(_cbor(v) for v in value)
    return head(5, len(value)) + b"".join(_cbor(k) + _cbor(v) for k, v in value.items())


def test_cloudwatch_over_rpc_v2_cbor(aws, endpoint):
    """The Rust SDK's CloudWatch client speaks Smithy RPC v2 CBOR, which moto 5.2.5 does
    not; the request is still attributed and authorized (its namespace decoded)."""
    key = register(endpoint, "metrics", allow(
        "cloudwatch:PutMetricData", "*",
        {"StringEquals": {"cloudwatch:namespace": "AirflowStack"}}))

    def put(namespace):
        body = _cbor({"Namespace": namespace,
                      "MetricData": [{"MetricName": "QueuedTasks", "Value": 3.0}]})
        request = urllib.request.Request(
            f"{endpoint}/service/GraniteServiceVersion20100801/operation/PutMetricData",
            data=body, method="POST", headers={
                "smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor",
                "Accept": "application/cbor",
                "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20260101/{REGION}/"
                                 "monitoring/aws4_request, SignedHeaders=host, Signature=0"})
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    status, headers, body = put("Elsewhere")
    import authz
    assert status == 403 and headers["smithy-protocol"] == "rpc-v2-cbor"
    assert headers["x-amzn-query-error"] == "AccessDenied;Sender"
    assert authz.cbor_decode(body)["__type"] == "AccessDenied"
    put("AirflowStack")  # moto's own answer does not matter here
    assert [(c["operation"], c["context"], c["allowed"]) for c in calls(endpoint, "metrics")] == [
        ("PutMetricData", {"cloudwatch:namespace": "Elsewhere"}, False),
        ("PutMetricData", {"cloudwatch:namespace": "AirflowStack"}, True)]


def test_cbor_decoder():
    import authz
    # {"Namespace": "N", "Values": [1, -2, 1.5, true, null], "Big": 70000} with an
    # indefinite-length array and a tagged timestamp.
    data = (bytes([0xA4, 0x69]) + b"Namespace" + bytes([0x61]) + b"N"
            + bytes([0x66]) + b"Values" + bytes([0x9F, 0x01, 0x21, 0xF9, 0x3E, 0x00, 0xF5,
                                                 0xF6, 0xFF])
            + bytes([0x63]) + b"Big" + bytes([0x1A]) + (70000).to_bytes(4, "big")
            + bytes([0x62]) + b"At" + bytes([0xC1, 0xFB]) + struct.pack(">d", 1.5e9))
    assert authz.cbor_decode(data) == {"Namespace": "N", "Values": [1, -2, 1.5, True, None],
                                       "Big": 70000, "At": 1.5e9}
    assert authz.cbor_decode(authz.cbor_encode_text_map({"__type": "AccessDenied"})) == {
        "__type": "AccessDenied"}
    with pytest.raises(ValueError):
        authz.cbor_decode(b"\x61")
