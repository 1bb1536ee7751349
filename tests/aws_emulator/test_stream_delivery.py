"""DynamoDB streams delivered to a Lambda function as Lambda's event source mappings do it
(stream_mappings.py), a function's asynchronous invocation of itself, and the emulator's
timeout cap (issue 17: the event processor, the connection manager's relaunch, its
deadline).

    $AIRFLOW_STACK_VENV/bin/python -m pytest tests/aws_emulator/test_stream_delivery.py -q

The session's emulator polls streams every 0.05 s (conftest.py). The function under test
is FIXTURE below, a Python script as ./bootstrap: a test fixture only - AWS's
provided.al2023 has no Python, but the emulator runs a script bootstrap with this host's
interpreter (server.py bootstrap_command), and a script can record every batch it gets
and answer as each test needs.
"""

import json
import re
import time
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

import stream_mappings
from harness import ACCOUNT, REGION, calls, client, deploy, events, running_server, \
    zip_bytes

TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
    "Action": "sts:AssumeRole"}]}

# The function: for a stream batch, records the sequence numbers it got (one JSON line per
# invocation in RECORD_FILE) and answers by each record's NewImage: action "fail" reports
# it in batchItemFailures, "crash" fails the invocation, "sleep" sleeps `seconds`; each
# only while the record was delivered fewer than `times` times before (default: always).
# RESPONSE=empty-identifier answers a failure with an empty itemIdentifier instead. A
# direct invocation records its deadline and trace header, may invoke itself asynchronously
# ({"invoke_self": true}) and sleeps {"sleep": s}.
FIXTURE = r'''#!{python}
import http.client, json, os, time
api = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
api.request("GET", "/2018-06-01/runtime/invocation/next")
r = api.getresponse()
event = json.loads(r.read())
request_id = r.getheader("Lambda-Runtime-Aws-Request-Id")
deadline_ms = int(r.getheader("Lambda-Runtime-Deadline-Ms"))
trace = r.getheader("Lambda-Runtime-Trace-Id")
os.environ["_X_AMZN_TRACE_ID"] = trace  # what a runtime does (lambda_runtime 1.5 does)
started = time.time()
record_file = os.environ["RECORD_FILE"]


def note(entry):
    with open(record_file, "a") as f:
        f.write(json.dumps({"request_id": request_id, **entry}) + "\n")


def answer(kind, body):
    api.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/{kind}",
                body=json.dumps(body))
    api.getresponse().read()


if "Records" in event:
    seen = {}
    with open(record_file) as f:
        for line in f:
            for seq in json.loads(line).get("seqs", []):
                seen[seq] = seen.get(seq, 0) + 1
    seqs = [rec["dynamodb"]["SequenceNumber"] for rec in event["Records"]]
    note({"seqs": seqs, "records": event["Records"], "started": started})
    failures, crash = [], False
    for rec in event["Records"]:
        image = rec["dynamodb"].get("NewImage", {})
        action = image.get("action", {}).get("S", "ok")
        seq = rec["dynamodb"]["SequenceNumber"]
        if seen.get(seq, 0) >= int(image.get("times", {}).get("N", "1000000")):
            continue
        if action == "fail":
            failures.append({"itemIdentifier": seq})
        elif action == "crash":
            crash = True
        elif action == "sleep":
            time.sleep(float(image["seconds"]["N"]))
    if crash:
        answer("error", {"errorType": "Crash", "errorMessage": "asked to crash"})
    elif failures and os.environ.get("RESPONSE") == "empty-identifier":
        answer("response", {"batchItemFailures": [{"itemIdentifier": ""}]})
    else:
        answer("response", {"batchItemFailures": failures})
else:
    note({"event": event, "started": started, "deadline_ms": deadline_ms, "trace": trace})
    if event.get("invoke_self"):
        import boto3  # reaches the emulator through AWS_ENDPOINT_URL, signed as the role
        try:
            boto3.client("lambda").invoke(
                FunctionName=os.environ["AWS_LAMBDA_FUNCTION_NAME"], InvocationType="Event",
                Payload=json.dumps({"generation": event.get("generation", 0) + 1}))
            note({"invoked_self_at": time.time()})
        except Exception as e:
            note({"invoke_error": str(e)})
    time.sleep(event.get("sleep", 0))
    note({"ended": time.time()})
    answer("response", {"ok": True})
api.request("GET", "/2018-06-01/runtime/invocation/next")
api.getresponse()
'''


def wait_for(condition, timeout=15.0, every=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout}s: {condition.__doc__ or condition}")


class Setup:
    """A table with a stream, a function and its role, built as a user would."""

    def __init__(self, aws, tmp_path, name="processor"):
        self.aws, self.name = aws, name
        self.record = tmp_path / f"{name}.jsonl"
        self.record.touch()
        self.table = f"{name}-events"
        described = aws("dynamodb").create_table(
            TableName=self.table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            StreamSpecification={"StreamEnabled": True,
                                 "StreamViewType": "NEW_AND_OLD_IMAGES"})
        self.stream = described["TableDescription"]["LatestStreamArn"]
        self.function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        self.queue_url = aws("sqs").create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        self.queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}-dlq"

    def role(self, *statements, logs=True) -> str:
        group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{self.name}"
        if logs:
            statements += ({"Effect": "Allow", "Resource": [group, f"{group}:*"],
                            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                       "logs:PutLogEvents"]},)
        role_name = f"{self.name}-role-{uuid.uuid4().hex[:6]}"
        arn = self.aws("iam").create_role(
            RoleName=role_name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
        if statements:
            self.aws("iam").put_role_policy(
                RoleName=role_name, PolicyName="inline", PolicyDocument=json.dumps(
                    {"Version": "2012-10-17", "Statement": list(statements)}))
        return arn

    def stream_read(self, resource=None) -> dict:
        return {"Effect": "Allow",
                "Resource": resource or f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/"
                                        f"{self.table}/stream/*",
                "Action": list(stream_mappings.STREAM_READ)}

    def send_to_dlq(self) -> dict:
        return {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": self.queue_arn}

    def function(self, role_arn=None, timeout=10, env=None) -> "Setup":
        role_arn = role_arn or self.role(self.stream_read(), self.send_to_dlq())
        self.aws("lambda").create_function(
            FunctionName=self.name, Runtime="provided.al2023", Handler="bootstrap",
            Role=role_arn, Timeout=timeout, MemorySize=128,
            Code={"ZipFile": zip_bytes(FIXTURE)},
            Environment={"Variables": {"RECORD_FILE": str(self.record), **(env or {})}})
        return self

    def mapping(self, **settings) -> dict:
        return self.aws("lambda").create_event_source_mapping(
            EventSourceArn=self.stream, FunctionName=self.name,
            **{"StartingPosition": "TRIM_HORIZON", **settings})

    def put(self, pk, **attrs) -> None:
        item = {"pk": {"S": pk}}
        for key, value in attrs.items():
            item[key] = {"N": str(value)} if isinstance(value, (int, float)) else {"S": value}
        self.aws("dynamodb").put_item(TableName=self.table, Item=item)

    def invocations(self) -> list[dict]:
        with open(self.record) as f:
            return [json.loads(line) for line in f if line.strip()]

    def batches(self) -> list[list[str]]:
        """The keys of each delivered batch, in delivery order."""
        return [[r["dynamodb"]["Keys"]["pk"]["S"] for r in e["records"]]
                for e in self.invocations() if "records" in e]

    def dlq(self, wait=0.0) -> list[dict]:
        got = self.aws("sqs").receive_message(QueueUrl=self.queue_url,
                                              MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def settle(seconds=0.4):
    """Longer than several polls: whatever else would be delivered has been."""
    time.sleep(seconds)


def test_records_reach_the_function_in_order_in_lambdas_format(aws, tmp_path):
    s = Setup(aws, tmp_path).function()
    s.put("before-1")
    s.put("before-2")  # LATEST: written before the mapping, never delivered
    esm = s.mapping(StartingPosition="LATEST", BatchSize=3)
    assert esm["State"] == "Enabled" and esm["EventSourceArn"] == s.stream
    keys = [f"k{i}" for i in range(7)]
    for key in keys:
        s.put(key, kind="event")
    aws("dynamodb").update_item(TableName=s.table, Key={"pk": {"S": "k0"}},
                                UpdateExpression="SET kind = :v",
                                ExpressionAttributeValues={":v": {"S": "changed"}})
    aws("dynamodb").delete_item(TableName=s.table, Key={"pk": {"S": "k1"}})

    def all_delivered():
        """nine records delivered"""
        return sum(len(b) for b in s.batches()) >= 9

    wait_for(all_delivered)
    settle()
    batches = s.batches()
    assert [k for b in batches for k in b] == keys + ["k0", "k1"], batches
    assert all(1 <= len(b) <= 3 for b in batches), batches
    records = [r for e in s.invocations() if "records" in e for r in e["records"]]
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == 9
    assert [r["eventName"] for r in records] == ["INSERT"] * 7 + ["MODIFY", "REMOVE"]
    now = time.time()
    for r in records:
        assert set(r) == {"eventID", "eventName", "eventVersion", "eventSource",
                          "awsRegion", "dynamodb", "eventSourceARN"}, r
        assert re.fullmatch(r"[0-9a-f]{32}", r["eventID"])
        assert (r["eventSource"], r["awsRegion"], r["eventSourceARN"]) == (
            "aws:dynamodb", REGION, s.stream)
        ddb = r["dynamodb"]
        assert ddb["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert isinstance(ddb["ApproximateCreationDateTime"], int)
        assert now - 60 < ddb["ApproximateCreationDateTime"] <= now
        assert isinstance(ddb["SizeBytes"], int) and ddb["SizeBytes"] > 0
    assert records[0]["dynamodb"]["Keys"] == {"pk": {"S": "k0"}}
    assert records[0]["dynamodb"]["NewImage"] == {"pk": {"S": "k0"}, "kind": {"S": "event"}}
    assert "OldImage" not in records[0]["dynamodb"]
    assert records[7]["dynamodb"]["OldImage"]["kind"] == {"S": "event"}
    assert records[7]["dynamodb"]["NewImage"]["kind"] == {"S": "changed"}
    assert "NewImage" not in records[8]["dynamodb"]

    lam = aws("lambda")
    described = lam.get_event_source_mapping(UUID=esm["UUID"])
    assert {k: described.get(k) for k in (
        "BatchSize", "StartingPosition", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds",
        "BisectBatchOnFunctionError", "MaximumBatchingWindowInSeconds",
        "LastProcessingResult", "FunctionArn")} == {
        "BatchSize": 3, "StartingPosition": "LATEST", "MaximumRetryAttempts": -1,
        "MaximumRecordAgeInSeconds": -1, "BisectBatchOnFunctionError": False,
        "MaximumBatchingWindowInSeconds": 0, "LastProcessingResult": "OK",
        "FunctionArn": s.function_arn}
    # the same path as any invocation: Lambda's lines in the function's log group
    wait_for(lambda: len(aws("logs").filter_log_events(
        logGroupName=f"/aws/lambda/{s.name}", filterPattern="REPORT")["events"]) == len(
        batches))

    lam.update_event_source_mapping(UUID=esm["UUID"], Enabled=False)
    assert lam.get_event_source_mapping(UUID=esm["UUID"])["State"] == "Disabled"
    s.put("while-disabled")
    settle()
    assert len(s.batches()) == len(batches)
    lam.update_event_source_mapping(UUID=esm["UUID"], Enabled=True)
    wait_for(lambda: s.batches()[-1] == ["while-disabled"])
    lam.delete_event_source_mapping(UUID=esm["UUID"])
    s.put("after-delete")
    settle()
    assert s.batches()[-1] == ["while-disabled"]
    assert lam.list_event_source_mappings(FunctionName=s.name)["EventSourceMappings"] == []


def test_a_filter_drops_the_records_it_does_not_match(aws, tmp_path):
    s = Setup(aws, tmp_path).function()
    s.mapping(FilterCriteria={"Filters": [
        {"Pattern": json.dumps({"eventName": ["INSERT"],
                                "dynamodb": {"NewImage": {"kind": {"S": ["trigger"]}}}})},
        {"Pattern": json.dumps({"dynamodb": {"NewImage": {"kind": {
            "S": [{"prefix": "urgent-"}]}}}})}]})
    s.put("a", kind="trigger")
    s.put("b", kind="other")
    s.put("c", kind="trigger")
    s.put("a", kind="trigger", note="modified")  # MODIFY: not the first filter's eventName
    s.put("d", kind="urgent-1")
    aws("dynamodb").delete_item(TableName=s.table, Key={"pk": {"S": "b"}})
    s.put("e", kind="other")
    wait_for(lambda: "d" in [k for b in s.batches() for k in b])
    settle()
    assert [k for b in s.batches() for k in b] == ["a", "c", "d"], s.batches()

    with pytest.raises(ClientError) as refused:
        s.mapping(FilterCriteria={"Filters": [{"Pattern": '{"eventName": "INSERT"}'}]})
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "Invalid filter pattern definition" in refused.value.response["Error"]["Message"]


@pytest.mark.parametrize("pattern,record,matched", [
    ({"eventName": ["INSERT", "MODIFY"]}, {"eventName": "MODIFY"}, True),
    ({"eventName": ["INSERT"]}, {"eventName": "REMOVE"}, False),
    ({"dynamodb": {"NewImage": {"n": {"N": ["5"]}}}},
     {"dynamodb": {"NewImage": {"n": {"N": "5"}}}}, True),
    ({"size": [{"numeric": [">", 0, "<=", 5]}]}, {"size": 5}, True),
    ({"size": [{"numeric": [">", 0, "<=", 5]}]}, {"size": 6}, False),
    ({"size": [{"numeric": [">", 0]}]}, {"size": "1"}, False),  # a string is no number
    ({"gone": [{"exists": False}]}, {"other": 1}, True),
    ({"gone": [{"exists": False}]}, {"gone": 1}, False),
    ({"here": [{"exists": True}]}, {"here": None}, True),
    ({"kind": [{"anything-but": ["a", "b"]}]}, {"kind": "c"}, True),
    ({"kind": [{"anything-but": ["a", "b"]}]}, {"kind": "a"}, False),
    ({"kind": [{"anything-but": "a"}]}, {}, False),
    ({"kind": [{"equals-ignore-case": "ABC"}]}, {"kind": "aBc"}, True),
    ({"kind": [{"suffix": ".json"}]}, {"kind": "x.json"}, True),
    ({"tags": ["x"]}, {"tags": ["w", "x"]}, True),
    ({"v": [None]}, {"v": None}, True),
    ({"v": [""]}, {"v": ""}, True),
    ({"$or": [{"a": [1]}, {"b": [2]}]}, {"b": 2}, True),
    ({"$or": [{"a": [1]}, {"b": [2]}]}, {"a": 2}, False),
])
def test_filter_patterns_match_as_lambda_documents(pattern, record, matched):
    parsed = stream_mappings.parse_filter_criteria(
        {"Filters": [{"Pattern": json.dumps(pattern)}]})
    assert stream_mappings.matches(parsed[0], record) is matched


@pytest.mark.parametrize("pattern", [
    '{"eventName": "INSERT"}', '{"a": []}', '{"a": [{"wildcard": "x*"}]}', "[]", "{}",
    '{"a": [{"numeric": [">", "1"]}]}', "not json"])
def test_unusable_filter_patterns_are_refused(pattern):
    with pytest.raises(stream_mappings.PatternError):
        stream_mappings.parse_filter_criteria({"Filters": [{"Pattern": pattern}]})


def test_a_partial_batch_failure_is_retried_from_the_lowest_failed_record(aws, tmp_path):
    s = Setup(aws, tmp_path).function()
    s.put("r0")
    s.put("r1")
    s.put("r2", action="fail", times=1)
    s.put("r3")
    s.put("r4", action="fail", times=2)
    esm = s.mapping(BatchSize=5, FunctionResponseTypes=["ReportBatchItemFailures"])
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    wait_for(lambda: len(s.batches()) >= 3)
    settle()
    # r2 and r4 reported: the checkpoint is before r2; r0 and r1 are never delivered again
    assert s.batches() == [["r0", "r1", "r2", "r3", "r4"], ["r2", "r3", "r4"], ["r4"]]


def test_an_empty_item_identifier_fails_the_whole_batch(aws, tmp_path):
    s = Setup(aws, tmp_path).function(env={"RESPONSE": "empty-identifier"})
    s.put("r0")
    s.put("r1", action="fail", times=1)
    s.mapping(FunctionResponseTypes=["ReportBatchItemFailures"])
    wait_for(lambda: len(s.batches()) >= 2)
    settle()
    assert s.batches() == [["r0", "r1"], ["r0", "r1"]]


def test_exhausted_retries_send_the_invocation_record_to_the_queue(aws, tmp_path):
    """A timeout is a failed batch; after MaximumRetryAttempts it goes to the OnFailure
    queue in Lambda's invocation record format, and reading moves on."""
    s = Setup(aws, tmp_path).function(timeout=1)
    s.put("slow", action="sleep", seconds=3)
    s.put("other")
    s.mapping(MaximumRetryAttempts=1,
              DestinationConfig={"OnFailure": {"Destination": s.queue_arn}})
    messages = wait_for(lambda: s.dlq(), timeout=20)
    assert s.batches() == [["slow", "other"]] * 2
    [record] = messages
    invocations = [e for e in s.invocations() if "records" in e]
    first, last = invocations[0]["records"][0], invocations[0]["records"][-1]
    info = record["DDBStreamBatchInfo"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record.pop("timestamp"))
    assert re.fullmatch(r"shardId-\d+-[0-9a-f]+", info.pop("shardId"))
    for key in ("approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info.pop(key))
    assert record == {
        "requestContext": {"requestId": invocations[-1]["request_id"],
                           "functionArn": s.function_arn,
                           "condition": "RetryAttemptsExhausted",
                           "approximateInvokeCount": 2},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "version": "1.0",
        "DDBStreamBatchInfo": {"startSequenceNumber": first["dynamodb"]["SequenceNumber"],
                               "endSequenceNumber": last["dynamodb"]["SequenceNumber"],
                               "batchSize": 2, "streamArn": s.stream}}
    timed_out = aws("logs").filter_log_events(logGroupName=f"/aws/lambda/{s.name}",
                                              filterPattern='"Task timed out"')["events"]
    assert len(timed_out) == 2
    s.put("next")
    wait_for(lambda: s.batches()[-1] == ["next"])
    wait_for(lambda: aws("lambda").list_event_source_mappings(FunctionName=s.name)[
        "EventSourceMappings"][0]["LastProcessingResult"] == "OK")


def test_bisection_isolates_the_record_that_fails(aws, tmp_path):
    s = Setup(aws, tmp_path).function()
    for key in ("r0", "r1"):
        s.put(key)
    s.put("r2", action="crash")
    s.put("r3")
    s.mapping(BatchSize=4, BisectBatchOnFunctionError=True, MaximumRetryAttempts=0,
              DestinationConfig={"OnFailure": {"Destination": s.queue_arn}})
    wait_for(lambda: len(s.batches()) >= 5)
    settle()
    # splitting does not count as a retry; only [r2] alone exhausts MaximumRetryAttempts 0
    assert s.batches() == [["r0", "r1", "r2", "r3"], ["r0", "r1"], ["r2", "r3"], ["r2"],
                           ["r3"]]
    [record] = s.dlq()
    r2 = [e for e in s.invocations() if "records" in e][3]["records"][0]
    assert record["DDBStreamBatchInfo"]["batchSize"] == 1
    assert record["DDBStreamBatchInfo"]["startSequenceNumber"] == \
        record["DDBStreamBatchInfo"]["endSequenceNumber"] == r2["dynamodb"]["SequenceNumber"]
    assert record["requestContext"]["approximateInvokeCount"] == 3


def test_a_role_that_may_not_read_the_stream_or_send_to_the_queue_is_refused(
        endpoint, aws, tmp_path):
    s = Setup(aws, tmp_path)
    s.function(role_arn=s.role())  # logs only
    lam = aws("lambda")
    with pytest.raises(ClientError) as refused:
        s.mapping()
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert refused.value.response["Error"]["Message"] == (
        f"Cannot access stream {s.stream}. Please ensure the role can perform the "
        "GetRecords, GetShardIterator, DescribeStream, and ListStreams Actions on your "
        "stream in IAM.")
    denied = [(c["action"], c["resource"], c["allowed"]) for c in
              calls(endpoint, f"{s.name}.event-source-mapping")]
    assert denied == [(a, s.stream, False) for a in stream_mappings.STREAM_READ]

    other_stream = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/another/stream/*"
    lam.update_function_configuration(FunctionName=s.name, Role=s.role(
        s.stream_read(other_stream)))
    with pytest.raises(ClientError):
        s.mapping()

    lam.update_function_configuration(FunctionName=s.name, Role=s.role(s.stream_read()))
    with pytest.raises(ClientError) as refused:
        s.mapping(DestinationConfig={"OnFailure": {"Destination": s.queue_arn}})
    assert refused.value.response["Error"]["Message"] == (
        "The provided execution role does not have permissions to call SendMessage on SQS")
    assert lam.list_event_source_mappings(FunctionName=s.name)["EventSourceMappings"] == []
    esm = s.mapping()  # stream permissions only, no destination: accepted
    with pytest.raises(ClientError):  # and a destination added later is checked too
        lam.update_event_source_mapping(
            UUID=esm["UUID"], DestinationConfig={"OnFailure": {"Destination": s.queue_arn}})


def test_a_template_event_source_mapping_delivers_and_checks_the_role(aws, tmp_path):
    aws("s3").create_bucket(Bucket="code")
    aws("s3").put_object(Bucket="code", Key="fixture.zip", Body=zip_bytes(FIXTURE))
    record = tmp_path / "cfn.jsonl"
    record.touch()
    cfn = aws("cloudformation")

    def template(stream_read: bool) -> str:
        statements = [{"Effect": "Allow", "Action": "sqs:SendMessage",
                       "Resource": {"Fn::GetAtt": ["Dlq", "Arn"]}}]
        if stream_read:
            statements.append({"Effect": "Allow", "Action": list(stream_mappings.STREAM_READ),
                               "Resource": {"Fn::GetAtt": ["Events", "StreamArn"]}})
        return json.dumps({"Resources": {
            "Events": {"Type": "AWS::DynamoDB::Table", "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "StreamSpecification": {"StreamViewType": "NEW_IMAGE"}}},
            "Dlq": {"Type": "AWS::SQS::Queue"},
            "Role": {"Type": "AWS::IAM::Role", "Properties": {
                "AssumeRolePolicyDocument": TRUST, "Policies": [{
                    "PolicyName": "streams", "PolicyDocument": {
                        "Version": "2012-10-17", "Statement": statements}}]}},
            "Processor": {"Type": "AWS::Lambda::Function", "Properties": {
                "Runtime": "provided.al2023", "Handler": "bootstrap", "Timeout": 900,
                "RecursiveLoop": "Allow",
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Environment": {"Variables": {"RECORD_FILE": str(record)}},
                "Code": {"S3Bucket": "code", "S3Key": "fixture.zip"}}},
            "Mapping": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
                "FunctionName": {"Ref": "Processor"},
                "EventSourceArn": {"Fn::GetAtt": ["Events", "StreamArn"]},
                "StartingPosition": "LATEST", "BatchSize": 10,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "MaximumRetryAttempts": 3,
                "DestinationConfig": {"OnFailure": {
                    "Destination": {"Fn::GetAtt": ["Dlq", "Arn"]}}}}}}})

    stack, _ = deploy(cfn, "no-stream-read", template(False), "CREATE")
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    reasons = [reason for logical, status, reason in events(cfn, stack["StackId"])
               if logical == "Mapping" and status == "CREATE_FAILED"]
    assert len(reasons) == 1 and "Cannot access stream arn:aws:dynamodb:" in reasons[0], \
        reasons

    stack, _ = deploy(cfn, "streams", template(True), "CREATE")
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    resources = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in
                 cfn.describe_stack_resources(StackName="streams")["StackResources"]}
    table = resources["Events"]
    aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": "from-cfn"}})

    def delivered():
        """the item written after the deploy"""
        with open(record) as f:
            return [json.loads(line) for line in f if line.strip()]

    [invocation] = wait_for(delivered)
    assert [r["dynamodb"]["Keys"] for r in invocation["records"]] == [{"pk": {"S": "from-cfn"}}]
    assert invocation["records"][0]["dynamodb"]["StreamViewType"] == "NEW_IMAGE"
    esm = aws("lambda").get_event_source_mapping(UUID=resources["Mapping"])
    assert esm["MaximumRetryAttempts"] == 3
    assert aws("lambda").get_function_recursion_config(
        FunctionName=resources["Processor"])["RecursiveLoop"] == "Allow"
    cfn.delete_stack(StackName="streams")
    wait_for(lambda: not aws("lambda").list_event_source_mappings()["EventSourceMappings"])


def test_a_function_that_invokes_itself_runs_beside_its_successor(endpoint, aws, tmp_path):
    """The connection manager's relaunch: an asynchronous invocation of its own ARN, allowed
    by its role, starts at once while the first is still running (not queued behind it)."""
    s = Setup(aws, tmp_path, name="manager")
    s.function(role_arn=s.role({"Effect": "Allow", "Action": "lambda:InvokeFunction",
                                "Resource": s.function_arn}))
    aws("lambda").invoke(FunctionName=s.name, InvocationType="Event",
                         Payload=json.dumps({"invoke_self": True, "sleep": 2.5}))

    def both_ended():
        """two invocations ended"""
        return sum("ended" in e for e in s.invocations()) == 2

    wait_for(both_ended, timeout=20)
    runs = {}
    for entry in s.invocations():
        runs.setdefault(entry["request_id"], {}).update(entry)
    first, second = sorted(runs.values(), key=lambda r: r["started"])
    assert first["event"] == {"invoke_self": True, "sleep": 2.5}
    assert second["event"] == {"generation": 1}
    assert "invoke_error" not in first, first
    assert second["started"] < first["ended"] - 1.0, (first, second)  # overlapping
    assert second["ended"] < first["ended"]
    # one chain of requests: the SDK sent the trace header back, Lambda counted the hop
    first_trace, second_trace = (dict(p.split("=", 1) for p in run["trace"].split(";"))
                                 for run in (first, second))
    assert first_trace["Root"] == second_trace["Root"]
    assert first_trace["Lineage"].endswith(":1") and second_trace["Lineage"].endswith(":2")
    decided = [(c["action"], c["resource"], c["allowed"]) for c in calls(endpoint, s.name)
               if c["action"].startswith("lambda:")]
    assert decided == [("lambda:InvokeFunction", s.function_arn, True)]

    other = Setup(aws, tmp_path, name="unrelayed")
    other.function(role_arn=other.role())  # may not invoke itself
    aws("lambda").invoke(FunctionName=other.name, Payload=json.dumps({"invoke_self": True}))
    [error] = [e["invoke_error"] for e in other.invocations() if "invoke_error" in e]
    assert "AccessDenied" in error and "lambda:InvokeFunction" in error, error
    assert len([e for e in other.invocations() if "event" in e]) == 1


def test_the_timeout_cap_shortens_the_deadline_of_every_function(tmp_path):
    """AIRFLOW_STACK_EMULATOR_LAMBDA_TIMEOUT_CAP_S: a function with Timeout 900 sees a
    deadline 1.5 s away and is stopped there with Lambda's timeout error; a shorter
    Timeout stays as it is."""
    with running_server(tmp_path / "capped.log",
                        env={"AIRFLOW_STACK_EMULATOR_LAMBDA_TIMEOUT_CAP_S": "1.5"}) as port:
        endpoint = f"http://127.0.0.1:{port}"

        def aws(service):
            return client(endpoint, service)

        long = Setup(aws, tmp_path, name="long").function(role_arn=None, timeout=900)
        started = time.time()
        response = aws("lambda").invoke(FunctionName=long.name,
                                        Payload=json.dumps({"sleep": 10}))
        took = time.time() - started
        assert response["FunctionError"] == "Unhandled"
        assert json.loads(response["Payload"].read()) == {
            "errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 1.50 seconds"}
        assert 1.5 <= took < 4, took
        [run] = [e for e in long.invocations() if "deadline_ms" in e]
        assert 1300 <= run["deadline_ms"] - run["started"] * 1000 <= 1600, run
        assert aws("lambda").get_function_configuration(FunctionName=long.name)["Timeout"] == 900
        logged = aws("logs").filter_log_events(logGroupName="/aws/lambda/long",
                                               filterPattern='"Task timed out"')["events"]
        assert re.search(r"Task timed out after 1\.\d\d seconds$", logged[0]["message"])

        short = Setup(aws, tmp_path, name="short").function(timeout=1)
        aws("lambda").invoke(FunctionName=short.name, Payload=json.dumps({}))
        [run] = [e for e in short.invocations() if "deadline_ms" in e]
        assert 800 <= run["deadline_ms"] - run["started"] * 1000 <= 1100, run


@pytest.mark.parametrize("setting,value", [
    ("AIRFLOW_STACK_EMULATOR_LAMBDA_TIMEOUT_CAP_S", "0"),
    ("AIRFLOW_STACK_EMULATOR_STREAM_POLL_S", "fast")])
def test_unusable_settings_stop_the_emulator_at_start(tmp_path, setting, value):
    import os
    import subprocess
    import sys

    from harness import SERVER
    done = subprocess.run([sys.executable, SERVER, "--port", "0"],
                          env={**os.environ, setting: value}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "READY" not in done.stdout
    assert f"{setting}={value!r}: want a positive number of seconds" in done.stderr


def test_a_recursive_chain_is_stopped_at_the_17th_invocation_unless_allowed(
        endpoint, aws, tmp_path):
    """Lambda's recursive loop detection: a function invoked about 16 times in one chain
    of requests (the trace header its SDK sends back) is not invoked a 17th time, unless
    its recursion config is Allow. The chain's count is put in the header directly here;
    the hop itself is shown by the self-invocation test above."""
    s = Setup(aws, tmp_path, name="looping").function(role_arn=None)
    lam = aws("lambda")
    lam.invoke(FunctionName=s.name, Payload=json.dumps({}))  # a chain of its own
    [trace] = [e["trace"] for e in s.invocations() if "trace" in e]
    key = dict(p.split("=", 1) for p in trace.split(";"))["Lineage"].split(":")[0]

    def invoke(count, **kwargs):
        chained = client(endpoint, "lambda")
        chained.meta.events.register("before-sign.lambda.Invoke", lambda request, **_: (
            request.headers.__setitem__("X-Amzn-Trace-Id",
                                        f"Root=1-00000000-{'0' * 24};Lineage={key}:{count}")))
        return chained.invoke(FunctionName=s.name, Payload=json.dumps({}), **kwargs)

    invoke(15)  # the 16th: runs
    assert len([e for e in s.invocations() if "trace" in e]) == 2
    with pytest.raises(ClientError) as stopped:
        invoke(16)
    assert stopped.value.response["Error"]["Code"] == "RecursiveInvocationException"
    assert invoke(16, InvocationType="Event")["StatusCode"] == 202  # accepted, dropped
    settle(1.0)
    assert len([e for e in s.invocations() if "trace" in e]) == 2
    assert lam.get_function_recursion_config(FunctionName=s.name)["RecursiveLoop"] == \
        "Terminate"
    lam.put_function_recursion_config(FunctionName=s.name, RecursiveLoop="Allow")
    invoke(16)
    assert len([e for e in s.invocations() if "trace" in e]) == 3
    stops = json.loads(urllib.request.urlopen(f"{endpoint}/_emulator/recursion-stops").read())
    assert [(x["count"], x["asynchronous"]) for x in stops["stops"]] == [(17, False),
                                                                         (17, True)]
