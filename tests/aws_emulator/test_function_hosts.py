"""A Lambda function in a VPC runs inside the lab host registered for it (server.py
function_host, POST /_emulator/function-hosts): in that network namespace, entered by the
registration's argv_prefix, its Runtime API on its own loopback there, AWS at the
registered endpoint - as a function with an ENI in its subnets runs on AWS. Invoked
directly or by a DynamoDB stream's event source mapping; stopped with its process group
at its timeout; a VPC function without a host runs outside any VPC and is listed as such.

    $AIRFLOW_STACK_VENV/bin/python -m pytest tests/aws_emulator/test_function_hosts.py -q

Needs root (it creates network namespaces with `ip netns add`, deleted after each test).
The function is FIXTURE, a Python script as ./bootstrap (the emulator runs a script with
this host's interpreter, server.py bootstrap_command).
"""

import json
import os
import shutil
import subprocess
import time
import uuid
from urllib.parse import urlsplit

import pytest

import stream_mappings
from harness import ACCOUNT, REGION, call, client, running_server, zip_bytes

TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
    "Action": "sts:AssumeRole"}]}
VPC = {"SubnetIds": ["subnet-0a1b2c3d"], "SecurityGroupIds": ["sg-0a1b2c3d"]}
ELSEWHERE = "http://10.255.255.1:4566"  # a registered endpoint nothing here listens on

# Reports where it ran: its network namespace, Runtime API, AWS endpoint, pid and its
# parent's command line; {"probe": port} tries 127.0.0.1:port; {"whoami": true} asks STS
# through AWS_ENDPOINT_URL; {"hang": true} starts a child in its process group, writes
# both pids to PID_FILE and sleeps past any timeout; a stream batch appends the report
# to RECORD_FILE.
FIXTURE = r'''#!{python}
import http.client, json, os, socket, subprocess, time
address = os.environ["AWS_LAMBDA_RUNTIME_API"]
api = http.client.HTTPConnection(address)
api.request("GET", "/2018-06-01/runtime/invocation/next")
r = api.getresponse()
event = json.loads(r.read())
request_id = r.getheader("Lambda-Runtime-Aws-Request-Id")
with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
    parent = [a.decode() for a in f.read().split(b"\0") if a]
report = {"netns": os.readlink("/proc/self/ns/net"), "runtime_api": address,
          "endpoint": os.environ["AWS_ENDPOINT_URL"], "pid": os.getpid(), "parent": parent}
if event.get("probe"):
    try:
        socket.create_connection(("127.0.0.1", event["probe"]), timeout=2).close()
        report["probe"] = "connected"
    except OSError as e:
        report["probe"] = type(e).__name__
if event.get("whoami"):
    import boto3  # signed as the function's role, through AWS_ENDPOINT_URL
    report["caller"] = boto3.client("sts").get_caller_identity()["Arn"]
if event.get("hang"):
    child = subprocess.Popen(["sleep", "600"])
    with open(os.environ["PID_FILE"], "w") as f:
        json.dump({"bootstrap": os.getpid(), "child": child.pid}, f)
    time.sleep(600)
if "Records" in event:
    with open(os.environ["RECORD_FILE"], "a") as f:
        f.write(json.dumps({**report, "records": len(event["Records"])}) + "\n")
    report = {"batchItemFailures": []}
api.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response",
            body=json.dumps(report))
api.getresponse().read()
api.request("GET", "/2018-06-01/runtime/invocation/next")
api.getresponse()
'''


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


@pytest.fixture
def netns():
    """A fresh network namespace with only its loopback up (no route anywhere), deleted
    after the test whatever happened."""
    name = f"emu-fh-{uuid.uuid4().hex[:8]}"
    try:
        _run("ip", "netns", "add", name)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.fail(f"cannot create a network namespace (these tests need root and "
                    f"iproute2): {getattr(e, 'stderr', '') or e}")
    try:
        _run("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def ns_id(name: str) -> str:
    """How /proc/<pid>/ns/net names the namespace /run/netns/<name>."""
    return f"net:[{os.stat(f'/run/netns/{name}').st_ino}]"


def enter(name: str) -> list[str]:
    """An argv_prefix shaped like netlab's Host.enter_argv([]): a shell step, then `ip
    netns exec`, each exec'ing the next."""
    return [shutil.which("sh"), "-c", 'exec "$@"', "netlab-enter",
            shutil.which("ip"), "netns", "exec", name]


def make_function(aws, name, vpc=True, timeout=10, env=None, statements=()):
    role_name = f"{name}-role-{uuid.uuid4().hex[:6]}"
    role = aws("iam").create_role(RoleName=role_name,
                                  AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    if statements:
        aws("iam").put_role_policy(RoleName=role_name, PolicyName="inline",
                                   PolicyDocument=json.dumps({"Version": "2012-10-17",
                                                              "Statement": list(statements)}))
    aws("lambda").create_function(
        FunctionName=name, Runtime="provided.al2023", Handler="bootstrap", Role=role,
        Timeout=timeout, MemorySize=128, Code={"ZipFile": zip_bytes(FIXTURE)},
        **({"VpcConfig": VPC} if vpc else {}),
        Environment={"Variables": env or {"UNUSED": "1"}})
    return name


def register(endpoint, function, netns, argv_prefix=None, aws_endpoint=ELSEWHERE):
    return call(endpoint, "POST", "/_emulator/function-hosts", {
        "function": function, "netns": netns, "argv_prefix": argv_prefix or enter(netns),
        "endpoint": aws_endpoint})


def invoke(aws, name, event) -> tuple[dict, bool]:
    got = aws("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return json.loads(got["Payload"].read()), "FunctionError" in got


def test_a_registered_vpc_function_runs_in_its_host_with_its_own_loopback(
        endpoint, aws, netns):
    """(a) in the namespace, (b) its Runtime API on 127.0.0.1 there although the namespace
    has no way to the emulator's loopback (whose port the function cannot connect to),
    AWS_ENDPOINT_URL the registered endpoint; the prefix exec'd into the bootstrap: its
    parent is the emulator itself, no `ip` or shell in between."""
    make_function(aws, "in-vpc")
    status, body = register(endpoint, "in-vpc", netns)
    assert status == 200, body
    assert body == {"function": "in-vpc", "region": REGION, "netns": netns,
                    "function_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:in-vpc",
                    "argv_prefix": enter(netns), "endpoint": ELSEWHERE}
    assert call(endpoint, "GET", "/_emulator/function-hosts")[1] == {
        "function_hosts": [body], "unhosted": []}

    emulator_port = urlsplit(endpoint).port
    report, failed = invoke(aws, "in-vpc", {"probe": emulator_port})
    assert not failed, report
    assert report["netns"] == ns_id(netns) != os.readlink("/proc/self/ns/net")
    host, port = report["runtime_api"].split(":")
    assert host == "127.0.0.1" and int(port) > 0
    assert report["probe"] == "ConnectionRefusedError", report  # not the emulator's loopback
    assert report["endpoint"] == ELSEWHERE
    assert any(arg.endswith("server.py") for arg in report["parent"]), report["parent"]


def test_delete_forgets_the_host_and_an_unhosted_vpc_function_is_listed(
        endpoint, aws, netns):
    """(d) after DELETE the function runs in the emulator's namespace again, with the
    emulator's own endpoint, and is listed as a VPC function run outside any VPC."""
    make_function(aws, "forgotten")
    assert register(endpoint, "forgotten", netns)[0] == 200
    assert invoke(aws, "forgotten", {})[0]["netns"] == ns_id(netns)

    status, body = call(endpoint, "DELETE", "/_emulator/function-hosts/forgotten")
    assert status == 200, body
    assert body == {"forgotten": [f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:forgotten"]}
    report, failed = invoke(aws, "forgotten", {})
    assert not failed, report
    assert report["netns"] == os.readlink("/proc/self/ns/net")  # the emulator's = ours
    assert report["endpoint"] == endpoint
    assert call(endpoint, "GET", "/_emulator/function-hosts")[1] == {
        "function_hosts": [], "unhosted": ["forgotten"]}
    assert call(endpoint, "DELETE", "/_emulator/function-hosts/forgotten")[0] == 404


def test_only_a_vpc_function_gets_a_host_and_the_prefix_is_checked(endpoint, aws, netns):
    """(c) a function outside a VPC is refused (it reaches the internet from the
    emulator's host, as on AWS); so are an unknown function, a missing namespace, a
    prefix that does not land in the namespace or forks on the way (the emulator would
    wait on and kill the wrong pid), and a loopback endpoint. Nothing gets registered."""
    make_function(aws, "public", vpc=False)
    make_function(aws, "private")
    status, body = register(endpoint, "public", netns)
    assert status == 400 and "no VpcConfig" in body["error"], body
    assert "only a function in a VPC runs in a lab host" in body["error"]

    assert register(endpoint, "nobody", netns)[0] == 404
    sh, ip = shutil.which("sh"), shutil.which("ip")
    refused = {
        "no network namespace": register(endpoint, "private", f"{netns}-gone"),
        "does not enter": register(endpoint, "private", netns, [shutil.which("env")]),
        "forks": register(endpoint, "private", netns,
                          [sh, "-c", '"$@"; exit $?', "forking", ip, "netns", "exec", netns]),
        "failed (exit": register(endpoint, "private", netns, [shutil.which("false")]),
        "is loopback": register(endpoint, "private", netns,
                                aws_endpoint="http://127.0.0.1:4566"),
    }
    for needle, (status, body) in refused.items():
        assert status == 400 and needle in body["error"], (needle, body)
    assert call(endpoint, "GET", "/_emulator/function-hosts")[1]["function_hosts"] == []


def gone(pid: int) -> bool:
    """No such process, or only its zombie (its parent has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_hosted_function_is_stopped_at_its_timeout_with_its_process_group(
        endpoint, aws, netns, tmp_path):
    """The prefix does not change which process the emulator kills: the bootstrap and a
    child of it are gone once Lambda's timeout error is returned."""
    pid_file = tmp_path / "pids.json"
    make_function(aws, "hangs", timeout=1, env={"PID_FILE": str(pid_file)})
    assert register(endpoint, "hangs", netns)[0] == 200
    started = time.time()
    report, failed = invoke(aws, "hangs", {"hang": True})
    assert failed and report["errorType"] == "Sandbox.Timedout", report
    assert time.time() - started < 8
    pids = json.loads(pid_file.read_text())
    deadline = time.time() + 5
    while not all(gone(pid) for pid in pids.values()) and time.time() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in pids.values()), pids


def test_a_stream_mapping_invokes_the_function_in_its_host(endpoint, aws, netns, tmp_path):
    """The event-stream processor's path: the emulator's own poller invokes the VPC
    function from the table's stream, and the batch is handled inside the host."""
    record = tmp_path / "batches.jsonl"
    record.touch()
    table = aws("dynamodb").create_table(
        TableName="events", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    stream = table["TableDescription"]["LatestStreamArn"]
    make_function(aws, "processor", env={"RECORD_FILE": str(record)}, statements=[{
        "Effect": "Allow", "Action": list(stream_mappings.STREAM_READ),
        "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/events/stream/*"}])
    assert register(endpoint, "processor", netns)[0] == 200
    aws("lambda").create_event_source_mapping(EventSourceArn=stream, FunctionName="processor",
                                              StartingPosition="TRIM_HORIZON")
    aws("dynamodb").put_item(TableName="events", Item={"pk": {"S": "one"}})
    deadline = time.time() + 15
    while not record.read_text().strip() and time.time() < deadline:
        time.sleep(0.05)
    batches = [json.loads(line) for line in record.read_text().splitlines()]
    assert batches, "the mapping delivered nothing within 15 s"
    assert batches[0]["netns"] == ns_id(netns) and batches[0]["records"] == 1, batches
    assert batches[0]["endpoint"] == ELSEWHERE


def test_a_hosted_function_reaches_aws_at_the_registered_endpoint(tmp_path, netns):
    """With a route: a veth pair between this namespace and the function's, and an
    emulator bound to this side's address only. The function signs as its role through
    AWS_ENDPOINT_URL and is answered; the Runtime API still is on its own loopback."""
    tag = uuid.uuid4().hex[:6]
    outside, inside = f"fho{tag}", f"fhi{tag}"
    subnet = 1 + int(tag[:2], 16) % 254
    here, there = f"169.254.{subnet}.1", f"169.254.{subnet}.2"
    try:
        _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        _run("ip", "link", "set", inside, "netns", netns)
        _run("ip", "addr", "add", f"{here}/30", "dev", outside)
        _run("ip", "link", "set", outside, "up")
        _run("ip", "-n", netns, "addr", "add", f"{there}/30", "dev", inside)
        _run("ip", "-n", netns, "link", "set", inside, "up")
        with running_server(tmp_path / "server.log", "--host", here) as port:
            own = f"http://{here}:{port}"
            aws = lambda service: client(own, service)  # noqa: E731
            make_function(aws, "caller")
            status, body = register(own, "caller", netns, aws_endpoint=own)
            assert status == 200, body
            report, failed = invoke(aws, "caller", {"whoami": True})
            assert not failed, report
            assert report["netns"] == ns_id(netns)
            assert report["endpoint"] == own
            assert report["runtime_api"].startswith("127.0.0.1:")
            assert report["caller"].startswith(
                f"arn:aws:sts::{ACCOUNT}:assumed-role/caller-role-"), report
            assert report["caller"].endswith("/caller")
    finally:
        subprocess.run(["ip", "link", "delete", outside], capture_output=True)
