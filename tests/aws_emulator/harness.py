"""Shared by the emulator's tests: starting the server, clients for the operator and for
registered identities, deploying templates, and the fake Lambdas (Runtime API clients
written in Python, standing in for the Rust ones).
"""

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from contextlib import contextmanager

import boto3
from botocore.config import Config

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")
REGION = "us-east-1"
ACCOUNT = "123456789012"


@contextmanager
def running_server(log_path, *args, env=None):
    """The emulator as a child process; yields its port; stopped by pid (SIGTERM, then
    SIGKILL), even when the test fails. `env`: settings added to this process's
    environment (e.g. AIRFLOW_STACK_EMULATOR_LAMBDA_TIMEOUT_CAP_S)."""
    started = time.time()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, SERVER, "--port", "0", *args],
                                stdout=subprocess.PIPE, stderr=log, text=True,
                                env={**os.environ, **(env or {})})
    try:
        line = proc.stdout.readline()  # "READY <port>"
        assert line.startswith("READY "), f"server did not start: {open(log_path).read()}"
        print(f"MEASURE emulator ready in {time.time() - started:.2f}s")
        yield int(line.split()[1])
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            assert proc.wait(10) == 0, "server did not exit cleanly on SIGTERM"
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            raise


def client(endpoint, service, key="testing"):
    """A boto3 client; `testing` is the unrestricted operator, a registered key an identity."""
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=key, aws_secret_access_key="any-value-signs",
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"total_max_attempts": 1}))


def call(endpoint, method, path, body=None):
    """An /_emulator/ endpoint: (status, parsed JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{endpoint}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


def register(endpoint, name, *statements, role=None):
    """Registers an identity with one inline policy; returns its access key id."""
    key = "AKIA" + uuid.uuid4().hex[:16].upper()
    status, body = call(endpoint, "POST", "/_emulator/identities", {
        "access_key_id": key, "name": name,
        "principal": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role or name}/{name}",
        "policies": [{"Version": "2012-10-17", "Statement": list(statements)}]})
    assert status == 200, body
    return key


def calls(endpoint, identity=None):
    path = "/_emulator/calls" + (f"?identity={identity}" if identity else "")
    return call(endpoint, "GET", path)[1]["calls"]


def zip_bytes(script: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        archive.writestr(info, script.replace("{python}", sys.executable))
    return buffer.getvalue()


# What both fake Lambdas below share: the first event from the Runtime API, and the PUT
# of a custom-resource response to its pre-signed URL (no Content-Type, as S3 wants).
_LAMBDA_PRELUDE = r'''#!{python}
import http.client, json, os, time, urllib.parse
api = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
api.request("GET", "/2018-06-01/runtime/invocation/next")
r = api.getresponse()
event = json.loads(r.read())
request_id = r.getheader("Lambda-Runtime-Aws-Request-Id")


def put_response(response_url, body):
    url = urllib.parse.urlsplit(response_url)
    put = http.client.HTTPConnection(url.netloc)
    put.putrequest("PUT", url.path + "?" + url.query, skip_accept_encoding=True)
    put.putheader("Content-Type", "")
    put.putheader("Content-Length", str(len(body)))
    put.endheaders(body)
    return put.getresponse().status
'''

# A fake custom-resource Lambda speaking the Runtime API, like the real Rust one will.
BOOTSTRAP = _LAMBDA_PRELUDE + r'''
assert int(r.getheader("Lambda-Runtime-Deadline-Ms")) > time.time() * 1000
with open(os.environ.get("RECORD_FILE", "/dev/null"), "a") as f:
    f.write(json.dumps(event) + "\n")
print("handling", event.get("RequestType", "direct invoke"), flush=True)
if "RequestType" in event:
    props = event["ResourceProperties"]
    time.sleep(float(props.get("Delay", "0")))
    status, reason = "SUCCESS", None
    if props.get("Fail") == "true" and event["RequestType"] != "Delete":
        status, reason = "FAILED", "boom: the handler was asked to fail"
    elif props.get("SecretArn") and event["RequestType"] != "Delete":
        import boto3  # reaches the emulator through AWS_ENDPOINT_URL
        from botocore.exceptions import ClientError
        try:
            boto3.client("secretsmanager").put_secret_value(
                SecretId=props["SecretArn"], SecretString="pw-" + props["Name"])
        except ClientError as e:  # like the Rust handlers: FAILED with the service's answer
            status, reason = "FAILED", "PutSecretValue: " + str(e)
    body = json.dumps({
        "Status": status, "Reason": reason,
        "PhysicalResourceId": event.get("PhysicalResourceId") or event["LogicalResourceId"] + "-id",
        "StackId": event["StackId"], "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": {"Greeting": "hello " + props.get("Name", ""), "Number": props.get("Number")},
    }).encode()
    assert put_response(event["ResponseURL"], body) == 200
    result = {"status": status}
else:
    result = {"echo": event, "function": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
              "endpoint": os.environ["AWS_ENDPOINT_URL"]}
api.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response",
            body=json.dumps(result))
api.getresponse().read()
api.request("GET", "/2018-06-01/runtime/invocation/next")  # a runtime loops; we get killed here
api.getresponse()
'''




def deploy(cfn, name, body, change_set_type):
    """What the Rust client does: unique change-set name, wait for it, execute, poll."""
    change_set = f"deploy-{uuid.uuid4().hex[:8]}"
    cfn.create_change_set(StackName=name, ChangeSetName=change_set, TemplateBody=body,
                          ChangeSetType=change_set_type, Capabilities=["CAPABILITY_IAM"])
    cfn.get_waiter("change_set_create_complete").wait(
        StackName=name, ChangeSetName=change_set, WaiterConfig={"Delay": 1})
    cfn.execute_change_set(StackName=name, ChangeSetName=change_set)
    return wait(cfn, name)


def wait(cfn, name, timeout=60):
    """Polls DescribeStacks until a terminal status; returns (stack, statuses seen)."""
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not seen or seen[-1] != stack["StackStatus"]:
            seen.append(stack["StackStatus"])
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            return stack, seen
        time.sleep(0.1)
    raise AssertionError(f"{name} still in progress: {seen}")


def events(cfn, stack_id):
    """Resource events, oldest first, as (logical id, status, reason)."""
    raw = cfn.describe_stack_events(StackName=stack_id)["StackEvents"][::-1]
    return [(e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason"))
            for e in raw]


def outputs(stack):
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}




# A fake migration custom resource: runs the one-off task named in its properties, waits
# for it to stop and reports FAILED with the exit code, stop reason and last log lines
# (what lambdas/migration does, in a few lines of Python).
RUNNER = _LAMBDA_PRELUDE + r'''
import boto3
from botocore.exceptions import ClientError
props = event["ResourceProperties"]
status, reason = "SUCCESS", None
if event["RequestType"] != "Delete":
    ecs, logs = boto3.client("ecs"), boto3.client("logs")
    try:
        task = ecs.run_task(
            cluster=props["Cluster"], taskDefinition=props["TaskDefinition"], count=1,
            launchType="FARGATE", startedBy="runner", networkConfiguration={
                "awsvpcConfiguration": {"subnets": props["Subnets"],
                                        "securityGroups": props["SecurityGroups"],
                                        "assignPublicIp": props.get("AssignPublicIp", "ENABLED")}}
        )["tasks"][0]
        while True:
            described = ecs.describe_tasks(cluster=props["Cluster"], tasks=[task["taskArn"]])
            task = described["tasks"][0]
            if task["lastStatus"] == "STOPPED":
                break
            time.sleep(0.1)
        container = task["containers"][0]
        code = container.get("exitCode")
        if code != 0:
            stream = f"{props['StreamPrefix']}/{container['name']}/{task['taskArn'].rsplit('/', 1)[-1]}"
            try:
                lines = [e["message"] for e in logs.get_log_events(
                    logGroupName=props["LogGroup"], logStreamName=stream, limit=8,
                    startFromHead=False)["events"]]
            except ClientError as e:
                lines = [f"(the log could not be read: {e})"]
            status = "FAILED"
            reason = (f"exit {code}; task stopped: {task.get('stoppedReason')}; last lines: "
                      + " | ".join(lines))
    except ClientError as e:
        status, reason = "FAILED", str(e)
body = json.dumps({
    "Status": status, "Reason": reason and reason[:3500],
    "PhysicalResourceId": event.get("PhysicalResourceId") or "run-" + event["RequestId"][:8],
    "StackId": event["StackId"], "RequestId": event["RequestId"],
    "LogicalResourceId": event["LogicalResourceId"], "Data": {}}).encode()
put_response(event["ResponseURL"], body)
api.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", body="{}")
api.getresponse().read()
api.request("GET", "/2018-06-01/runtime/invocation/next")
api.getresponse()
'''
