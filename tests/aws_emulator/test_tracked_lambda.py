"""The example tracked function (crates/tracked-example) run by the emulator as it runs the
stack's Lambdas, and its logs as CloudWatch Logs gives them to a follower (issue 16):
Lambda's START/END/REPORT lines around the function's own, each line stamped when it was
written and delivered while the function runs, asynchronous failures retried as Lambda
does, no logs for a role that may not write them, and FilterLogEvents paging, interleaving
and the provider's follower (providers/airflow-stack-lambda) against it.

    cargo build -p airflow-tracked-example
    $AIRFLOW_STACK_VENV/bin/python -m pytest tests/aws_emulator/test_tracked_lambda.py -q

The binary is $AIRFLOW_STACK_TRACKED_EXAMPLE (tests/run-all.sh sets it), else
$CARGO_TARGET_DIR/debug/airflow-tracked-example-bootstrap. The session's emulator retries
after 1 s instead of 1 and 2 minutes (conftest.py).
"""

import io
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from harness import ACCOUNT, REGION, SERVER, calls, client, deploy, register

REPO = Path(__file__).resolve().parents[2]
ROLE_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
    "Action": "sts:AssumeRole"}]})
START = re.compile(r"START RequestId: ([0-9a-f-]{36}) Version: \$LATEST")
REPORT = re.compile(r"REPORT RequestId: ([0-9a-f-]{36})\tDuration: (\d+\.\d\d) ms\t"
                    r"Billed Duration: (\d+) ms\tMemory Size: (\d+) MB\t"
                    r"Max Memory Used: (\d+) MB(?:\tInit Duration: (\d+\.\d\d) ms)?")


def example_binary() -> Path:
    path = os.environ.get("AIRFLOW_STACK_TRACKED_EXAMPLE") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", str(REPO / "target")), "debug",
        "airflow-tracked-example-bootstrap")
    assert os.path.isfile(path), (
        f"no example tracked function at {path}: `cargo build -p airflow-tracked-example` "
        "(tests/run-all.sh builds it and sets AIRFLOW_STACK_TRACKED_EXAMPLE)")
    return Path(path)


@pytest.fixture(scope="session")
def example_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        archive.writestr(info, example_binary().read_bytes())
    return buffer.getvalue()


@pytest.fixture
def make_function(aws, example_zip):
    """Creates the example function as a user would (CreateFunction with the zip, a role
    that may write its log group unless `logs=False`); returns its name."""

    def make(name="tracked", timeout=10, logs=True):
        role = aws("iam").create_role(RoleName=f"{name}-role",
                                      AssumeRolePolicyDocument=ROLE_TRUST)["Role"]
        if logs:
            group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{name}"
            aws("iam").put_role_policy(
                RoleName=f"{name}-role", PolicyName="logs", PolicyDocument=json.dumps({
                    "Version": "2012-10-17", "Statement": [{
                        "Effect": "Allow", "Resource": [group, f"{group}:*"],
                        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                   "logs:PutLogEvents"]}]}))
        arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
        aws("lambda").create_function(
            FunctionName=name, Runtime="provided.al2023", Handler="bootstrap",
            Role=role["Arn"], Timeout=timeout, MemorySize=128, Architectures=[arch],
            Code={"ZipFile": example_zip})
        return name

    return make


def correlation_id() -> str:
    return f"dag.task.manual__run.m-1.t1.{secrets.token_hex(6)}"


def payload(cid: str, **order) -> bytes:
    return json.dumps({"airflow_correlation_id": cid, **order}).encode()


def all_events(aws, name, **kwargs) -> list[dict]:
    """Every event of the function's log group FilterLogEvents returns, page by page."""
    logs, events, token = aws("logs"), [], None
    while True:
        page = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}", **kwargs,
                                      **({"nextToken": token} if token else {}))
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def wait_for(condition, timeout=20.0, every=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout}s: {condition.__doc__ or condition}")


def group_exists(aws, name) -> bool:
    groups = aws("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")
    return bool(groups["logGroups"])


def finished(aws, name, runs=1, timeout=20.0) -> list[dict]:
    """The log group's events once `runs` invocations wrote their REPORT line."""

    def reported():
        """every run's REPORT line"""
        if not group_exists(aws, name):
            return None
        events = all_events(aws, name)
        return sum(e["message"].startswith("REPORT") for e in events) >= runs and events

    return wait_for(reported, timeout)


def records(events, cid) -> list[dict]:
    """The function's JSON lines carrying `cid`."""
    found = []
    for event in events:
        try:
            line = json.loads(event["message"])
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("correlation_id") == cid:
            found.append(line)
    return found


def test_a_sync_invocation_logs_between_start_and_report_with_the_times_it_ran(
        aws, make_function):
    """START, the function's lines (with the correlation ID, stamped when written: the
    one-second sleep shows between them), END and REPORT, in one stream, in order."""
    name, cid = make_function(), correlation_id()
    before = int(time.time() * 1000)
    response = aws("lambda").invoke(FunctionName=name, Payload=payload(
        cid, lines=2, action="sleep", seconds=1.0, result={"rows": 3}))
    after = int(time.time() * 1000)
    print(f"MEASURE sync invocation of the example (1 s sleep): {(after - before) / 1000:.2f}s")
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {"rows": 3}

    events = finished(aws, name)
    assert len({e["logStreamName"] for e in events}) == 1
    messages = [e["message"] for e in events]
    request_id = START.fullmatch(messages[0]).group(1)
    lines = records(events, cid)
    assert [line.get("airflow_tracking") for line in lines] == [
        "start", None, None, None, "end"], messages  # 2 lines, "sleeping", end marker
    assert lines[-1]["result"] == {"rows": 3}
    assert all(line.get("requestId") == request_id for line in lines)
    assert messages[-2] == f"END RequestId: {request_id}"
    report = REPORT.fullmatch(messages[-1])
    assert report, messages[-1]
    assert report.group(1) == request_id
    duration, billed = float(report.group(2)), int(report.group(3))
    assert 1000 <= duration < after - before, messages[-1]
    assert billed >= duration and report.group(4) == "128"
    assert 1 <= int(report.group(5)) <= 128 and report.group(6) is not None  # cold start

    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= after, stamps
    start_ms = next(e["timestamp"] for e in events if '"airflow_tracking":"start"' in
                    e["message"].replace(" ", ""))
    end_ms = next(e["timestamp"] for e in events if '"airflow_tracking":"end"' in
                  e["message"].replace(" ", ""))
    assert 990 <= end_ms - start_ms < 3000, (start_ms, end_ms)  # the sleep, as it ran


def test_lines_are_delivered_while_the_function_runs(aws, make_function):
    """A follower sees the start marker of a long invocation well before it ends."""
    name, cid = make_function(), correlation_id()
    invoked = time.time()
    assert aws("lambda").invoke(FunctionName=name, InvocationType="Event", Payload=payload(
        cid, action="sleep", seconds=4, result=1))["StatusCode"] == 202

    def started():
        """the start marker, searched by its correlation ID"""
        try:
            return records(all_events(aws, name, filterPattern=f'"{cid}"'), cid)
        except ClientError as e:  # the group exists once the function starts
            assert e.response["Error"]["Code"] == "ResourceNotFoundException"
            return None

    seen = wait_for(started, timeout=10, every=0.05)
    waited = time.time() - invoked
    print(f"MEASURE start marker searchable {waited:.2f}s after an asynchronous invocation")
    assert seen[0]["airflow_tracking"] == "start"
    assert "end" not in [line.get("airflow_tracking") for line in seen]
    assert not any(e["message"].startswith("END") for e in all_events(aws, name))  # running
    wait_for(lambda: [line for line in records(all_events(aws, name), cid)
                      if line.get("airflow_tracking") == "end"])


def test_a_timeout_is_logged_as_lambda_logs_it(aws, make_function):
    name, cid = make_function(timeout=1), correlation_id()
    response = aws("lambda").invoke(FunctionName=name, Payload=payload(cid, action="sleep"))
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read()) == {
        "errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 1.00 seconds"}
    messages = [e["message"] for e in finished(aws, name)]
    request_id = START.fullmatch(messages[0]).group(1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z " + request_id +
                        r" Task timed out after 1\.\d\d seconds", messages[-3]), messages
    assert messages[-2] == f"END RequestId: {request_id}"
    assert 1000 <= float(REPORT.fullmatch(messages[-1]).group(2)) < 2000
    assert not [line for line in records([{"message": m} for m in messages], cid)
                if line.get("airflow_tracking") in ("end", "error")]


def starts(aws, name) -> list[tuple[int, str]]:
    try:
        return [(e["timestamp"], START.fullmatch(e["message"]).group(1))
                for e in all_events(aws, name, filterPattern="START")]
    except ClientError:
        return []


def test_a_failed_async_invocation_is_retried_twice_with_its_request_id(aws, make_function):
    name, cid = make_function(), correlation_id()
    aws("lambda").invoke(FunctionName=name, InvocationType="Event",
                         Payload=payload(cid, action="fail", message="boom"))
    runs = wait_for(lambda: len(starts(aws, name)) == 3 and starts(aws, name), timeout=30)
    assert len({request_id for _, request_id in runs}) == 1, runs
    gaps = [b[0] - a[0] for a, b in zip(runs, runs[1:])]
    assert all(gap >= 1000 for gap in gaps), gaps  # after the (shortened) waits
    events = finished(aws, name, runs=3)
    errors = [line for line in records(events, cid) if line.get("airflow_tracking") == "error"]
    assert [e["errorMessage"] for e in errors] == ["boom"] * 3
    assert len({e["logStreamName"] for e in events}) == 3  # a new environment each time
    time.sleep(2.5)  # longer than the wait before another retry: there is none
    assert len(starts(aws, name)) == 3


def test_maximum_retry_attempts_0_runs_a_failed_async_invocation_once(aws, make_function):
    name, cid = make_function(), correlation_id()
    lam = aws("lambda")
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    lam.invoke(FunctionName=name, InvocationType="Event",
               Payload=payload(cid, action="fail"))
    finished(aws, name)
    time.sleep(2.5)
    assert len(starts(aws, name)) == 1


def test_put_replaces_and_update_merges_the_event_invoke_config(aws, make_function):
    """moto kept the first Put for ever; AWS's Put replaces, Update changes what it names."""
    name, lam = make_function(), aws("lambda")

    def config():
        answer = lam.get_function_event_invoke_config(FunctionName=name)
        return {k: answer.get(k) for k in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds")}

    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=120)
    assert config() == {"MaximumRetryAttempts": None, "MaximumEventAgeInSeconds": 120}
    lam.update_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    assert config() == {"MaximumRetryAttempts": 1, "MaximumEventAgeInSeconds": 120}


def test_cloudformation_event_invoke_config_applies_to_the_function(aws, example_zip):
    aws("s3").create_bucket(Bucket="code")
    aws("s3").put_object(Bucket="code", Key="tracked.zip", Body=example_zip)
    cfn, lam = aws("cloudformation"), aws("lambda")

    def body(config):
        resources = {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {
                "AssumeRolePolicyDocument": json.loads(ROLE_TRUST)}},
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
                "FunctionName": "cfn-tracked", "Runtime": "provided.al2023",
                "Handler": "bootstrap", "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Code": {"S3Bucket": "code", "S3Key": "tracked.zip"}}}}
        if config:
            resources["Config"] = {"Type": "AWS::Lambda::EventInvokeConfig", "Properties": {
                "FunctionName": {"Ref": "Fn"}, "Qualifier": "$LATEST", **config}}
        return json.dumps({"Resources": resources})

    stack, _ = deploy(cfn, "eic", body({"MaximumRetryAttempts": 0}), "CREATE")
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert lam.get_function_event_invoke_config(
        FunctionName="cfn-tracked")["MaximumRetryAttempts"] == 0
    stack, _ = deploy(cfn, "eic", body({"MaximumRetryAttempts": 1,
                                        "MaximumEventAgeInSeconds": 300}), "UPDATE")
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    answer = lam.get_function_event_invoke_config(FunctionName="cfn-tracked")
    assert (answer["MaximumRetryAttempts"], answer["MaximumEventAgeInSeconds"]) == (1, 300)
    stack, _ = deploy(cfn, "eic", body(None), "UPDATE")
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    with pytest.raises(ClientError):
        lam.get_function_event_invoke_config(FunctionName="cfn-tracked")


def test_event_invoke_config_is_authorized_on_the_function(endpoint, aws, make_function):
    name = make_function()
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    key = register(endpoint, "deployer", {
        "Effect": "Allow", "Resource": arn,
        "Action": ["lambda:PutFunctionEventInvokeConfig",
                   "lambda:GetFunctionEventInvokeConfig"]})
    lam = client(endpoint, "lambda", key)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    assert lam.get_function_event_invoke_config(FunctionName=name)["MaximumRetryAttempts"] == 0
    with pytest.raises(ClientError) as denied:
        lam.delete_function_event_invoke_config(FunctionName=name)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    decided = [(c["action"], c["allowed"]) for c in calls(endpoint, "deployer")]
    assert decided == [("lambda:PutFunctionEventInvokeConfig", True),
                       ("lambda:GetFunctionEventInvokeConfig", True),
                       ("lambda:DeleteFunctionEventInvokeConfig", False)]


def test_a_role_that_may_not_write_logs_gets_none(endpoint, aws, make_function):
    name, cid = make_function(logs=False), correlation_id()
    response = aws("lambda").invoke(FunctionName=name, Payload=payload(cid, result=7))
    assert json.loads(response["Payload"].read()) == 7  # the invocation itself is fine
    assert not group_exists(aws, name)
    denied = [c for c in calls(endpoint, name) if not c["allowed"]]
    assert [c["action"] for c in denied] == ["logs:CreateLogGroup"], denied


def test_create_function_logging_config_names_the_group_it_writes_to(aws, example_zip):
    """moto ignores CreateFunction's LoggingConfig; the emulator keeps its LogGroup, so a
    function whose role may write only that group (as the template's stream functions,
    which tests/e2e creates through the API) logs there, and not to /aws/lambda/<name>."""
    name, group = "tracked-own-group", "/e2e/own-group/tracked"
    aws("logs").create_log_group(logGroupName=group)
    arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}"
    role = aws("iam").create_role(RoleName=f"{name}-role",
                                  AssumeRolePolicyDocument=ROLE_TRUST)["Role"]
    aws("iam").put_role_policy(RoleName=f"{name}-role", PolicyName="logs",
                               PolicyDocument=json.dumps({
                                   "Version": "2012-10-17", "Statement": [{
                                       "Effect": "Allow", "Resource": [f"{arn}:*"],
                                       "Action": ["logs:CreateLogStream", "logs:PutLogEvents"]}]}))
    arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    aws("lambda").create_function(
        FunctionName=name, Runtime="provided.al2023", Handler="bootstrap", Role=role["Arn"],
        Timeout=10, MemorySize=128, Architectures=[arch], Code={"ZipFile": example_zip},
        LoggingConfig={"LogFormat": "JSON", "LogGroup": group})
    cid = correlation_id()
    response = aws("lambda").invoke(FunctionName=name, Payload=payload(cid, result=5))
    assert json.loads(response["Payload"].read()) == 5

    def logged():
        """the function's start marker in its own group"""
        events = aws("logs").filter_log_events(logGroupName=group,
                                               filterPattern=f'"{cid}"')["events"]
        return records(events, cid)

    assert wait_for(logged)[0]["airflow_tracking"] == "start"
    assert not group_exists(aws, name)  # nothing went to /aws/lambda/<name>


def test_filter_log_events_pages_return_every_line_once_in_time_order(aws, make_function):
    """Two invocations at once (two streams) whose lines interleave in time: small pages
    return each event once, all streams merged by timestamp, as AWS does (moto listed
    them stream by stream)."""
    name, cid = make_function(), correlation_id()
    lam = aws("lambda")
    lam.invoke(FunctionName=name, InvocationType="Event",
               Payload=payload(cid, lines=12, action="sleep", seconds=1.5))
    time.sleep(0.5)
    lam.invoke(FunctionName=name, InvocationType="Event",
               Payload=payload(cid, lines=12, action="sleep", seconds=0.2))
    whole = finished(aws, name, runs=2)
    assert len({e["logStreamName"] for e in whole}) == 2
    paged, pages, token = [], 0, None
    while True:
        page = aws("logs").filter_log_events(logGroupName=f"/aws/lambda/{name}", limit=4,
                                             **({"nextToken": token} if token else {}))
        paged += page["events"]
        pages += 1
        token = page.get("nextToken")
        if not token:
            break
    assert pages > 1 and len(paged) == len(whole) > 30
    ids = [e["eventId"] for e in paged]
    assert len(set(ids)) == len(ids) and ids == [e["eventId"] for e in whole]
    stamps = [e["timestamp"] for e in paged]
    assert stamps == sorted(stamps)
    streams = [e["logStreamName"] for e in paged]
    assert streams != sorted(streams, key=streams.index), "the streams do not interleave"
    # the correlation ID as the follower searches for it: the function's lines, not Lambda's
    found = all_events(aws, name, filterPattern=f'"{cid}"', startTime=stamps[0])
    assert len(found) == len(records(whole, cid)) == 2 * (1 + 12 + 1 + 1)


def follow(endpoint, name, cid, invoked_ms):
    """The provider's follower (boto3 driver) against the emulator's CloudWatch Logs."""
    sys.path.insert(0, str(REPO / "providers" / "airflow-stack-lambda" / "src"))
    from airflow_stack_lambda.clock import SystemClock
    from airflow_stack_lambda.follower import FollowSpec, follow as run

    spec = FollowSpec(function_name=name, log_group=f"/aws/lambda/{name}",
                      correlation_id=cid, invoked_at_ms=invoked_ms, timeout_ms=10_000,
                      grace_ms=5_000, poll_interval_s=0.5, settle_s=0.5)
    lines: list[str] = []
    return run(client(endpoint, "logs"), spec, SystemClock(), lines.append), lines


@pytest.mark.parametrize("order,expected", [
    ({"lines": 2, "result": {"rows": 3}}, "success"),
    ({"action": "fail", "message": "connection refused", "cause": "no route"}, "error")])
def test_the_providers_follower_reads_an_async_invocation(endpoint, aws, make_function,
                                                          order, expected):
    name, cid = make_function(), correlation_id()
    aws("lambda").put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    invoked = int(time.time() * 1000)
    results = {}
    follower = threading.Thread(target=lambda: results.update(
        outcome=follow(endpoint, name, cid, invoked)))
    follower.start()
    aws("lambda").invoke(FunctionName=name, InvocationType="Event",
                         Payload=payload(cid, **order))
    follower.join(30)
    outcome, lines = results["outcome"]
    print(f"MEASURE follower outcome after {(time.time() * 1000 - invoked) / 1000:.2f}s: "
          f"{outcome.stats}")
    assert outcome.status == expected, outcome
    assert json.loads(lines[0])["airflow_tracking"] == "start"
    if expected == "success":
        assert outcome.result == {"rows": 3} and outcome.has_result
        assert len(lines) == 4  # start, 2 lines, end
    else:
        assert outcome.error.error_message == "connection refused"
        assert outcome.error.error_type == "ExampleError"
        assert outcome.error.stack_trace == ("connection refused", "caused by: no route")


def test_unusable_retry_delays_stop_the_emulator_at_start():
    """The waits come from AIRFLOW_STACK_EMULATOR_LAMBDA_RETRY_DELAYS; a value that is not
    two numbers of seconds is refused with what it wants, not ignored."""
    env = {**os.environ, "AIRFLOW_STACK_EMULATOR_LAMBDA_RETRY_DELAYS": "1"}
    done = subprocess.run([sys.executable, SERVER, "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "READY" not in done.stdout
    assert "want two comma-separated numbers of seconds" in done.stderr, done.stderr
