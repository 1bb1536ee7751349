"""End to end: the real `airflow-scaler` Lambda binary against the harness's real Airflow.

The scaler's template side only exists with autoscaling and alerts on (which need
`network.nat_gateways: 1`): this module runs on the `scaled` stack, dev.yaml with those
switched on (harness.stack.scaled_stack_file), so the worker service is the one the
scaler drives: the emulator plays ECS's service scheduler and the harness runs one real
Celery worker host per task (harness/pool.py). The `ScalerFunction`'s
`Environment.Variables` are read from that template; what CloudFormation would supply
and the harness did not create (the state table, the SNS topic) is created here from
their template properties. The Lambda runs in the VPC as
the template puts it: in its own lab host with `ScalerSecurityGroup`, reaching the
api-server through the template's `ApiServerFromScaler` rule and Cloud Map name, with the
credentials of `ScalerFunctionRole` (its inline policies; their EC2 network-interface
statements cover the calls Lambda makes for it, not the function's). Its
Runtime API listens on the host's own loopback, as Lambda's does; each invocation is the
EventBridge "Scheduled Event" the stack's `rate(1 minute)` rule sends.

SNS delivers to a local HTTP server (an `http` subscription; moto 5.2.5 auto-confirms it
and POSTs each notification synchronously during Publish), listening inside the AWS
emulator's host. Slack is not used here: the Lambda only calls `https://` webhook URLs
with the webpki roots, which a local server cannot serve.

CloudWatch: the Rust SDK's PutMetricData speaks Smithy rpc-v2-cbor, which moto 5.2.5
does not serve; so AWS_ENDPOINT_URL_CLOUDWATCH points at a capture server
(`CloudWatchSink`) in the emulator's host that decodes the request and answers `{}`.
Those calls are not authorized by the emulator (the role's `cloudwatch:PutMetricData`
with its namespace condition is checked by cfn-lint and the template tests only).

Order: the alert test first (its ticks leave an idle first worker), then the scaling
test: down to zero workers; a long task scales out from zero; bursts of short tasks
scale out to a second worker and back in, twice, while the long task holds the first.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from harness import infra
from harness.api import Airflow, ApiError
from harness.nsbind import listen_in
from harness.sns import SnsSink
from harness.procs import run, wait_for
from harness.template import Context, Template

def _cbor(data: bytes, i: int = 0):
    """A minimal CBOR decoder (RFC 8949): what a Smithy rpc-v2-cbor request holds."""
    import struct
    ib = data[i]
    major, info = ib >> 5, ib & 31
    i += 1
    if major == 7:
        if info == 25:
            return struct.unpack(">e", data[i:i + 2])[0], i + 2
        if info == 26:
            return struct.unpack(">f", data[i:i + 4])[0], i + 4
        if info == 27:
            return struct.unpack(">d", data[i:i + 8])[0], i + 8
        return {20: False, 21: True, 22: None, 23: None}[info], i
    if info < 24:
        n = info
    elif info == 31:
        n = None  # indefinite length
    else:
        size = {24: 1, 25: 2, 26: 4, 27: 8}[info]
        n, i = int.from_bytes(data[i:i + size], "big"), i + size
    if major == 0:
        return n, i
    if major == 1:
        return -1 - n, i
    if major in (2, 3):
        if n is None:
            chunks = b""
            while data[i] != 0xFF:
                c, i = _cbor(data, i)
                chunks += c.encode() if isinstance(c, str) else c
            raw, i = chunks, i + 1
        else:
            raw, i = data[i:i + n], i + n
        return (raw.decode() if major == 3 and isinstance(raw, bytes) else raw), i
    if major == 4:
        out = []
        while (len(out) < n) if n is not None else data[i] != 0xFF:
            v, i = _cbor(data, i)
            out.append(v)
        return out, i + (1 if n is None else 0)
    if major == 5:
        d = {}
        while (len(d) < n) if n is not None else data[i] != 0xFF:
            k, i = _cbor(data, i)
            d[k], i = _cbor(data, i)
        return d, i + (1 if n is None else 0)
    if major == 6:
        return _cbor(data, i)  # tag (e.g. 1 = epoch timestamp): the value
    raise ValueError(f"CBOR major type {major}")


class CloudWatchSink:
    """PutMetricData over Smithy rpc-v2-cbor, which the Rust SDK's CloudWatch client
    speaks and moto 5.2.5 does not (moto answers 404): keeps each request's metric data.
    The Lambda gets it as AWS_ENDPOINT_URL_CLOUDWATCH (the SDK's per-service endpoint)."""

    def __init__(self, aws):
        self.requests: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not self.path.endswith("/operation/PutMetricData"):
                    self.send_error(400, f"not PutMetricData: {self.path}")
                    return
                sink.requests.append(_cbor(body)[0] if body else {})
                self.send_response(200)
                self.send_header("smithy-protocol", "rpc-v2-cbor")
                self.send_header("Content-Type", "application/cbor")
                self.send_header("Content-Length", "1")
                self.end_headers()
                self.wfile.write(b"\xa0")  # {}

        # In the emulator's host, open to every host as the AWS endpoints are.
        self.server = infra._Server.on(listen_in(aws.host.netns, "0.0.0.0"), Handler)
        port = self.server.server_address[1]
        aws.host.lab.allow_any("aws-endpoint", port)
        self.url = f"http://{aws.host.ip}:{port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def values(requests: list[dict], namespace: str, name: str, stack: str) -> list[float]:
        out = []
        for req in requests:
            if req.get("Namespace") != namespace:
                continue
            for d in req.get("MetricData", []):
                dims = {x["Name"]: x["Value"] for x in d.get("Dimensions", [])}
                if d.get("MetricName") == name and dims == {"Stack": stack}:
                    out.append(d["Value"])
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _targets(value, found: set[str]) -> set[str]:
    """Logical ids a value refers to (Ref / Fn::GetAtt / ${X} in Fn::Sub)."""
    if isinstance(value, list):
        for v in value:
            _targets(v, found)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref":
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add((v if isinstance(v, list) else v.split(".", 1))[0])
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                found.update(m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text))
                if not isinstance(v, str):
                    _targets(v[1], found)
            else:
                _targets(v, found)
    return found


class Scaler:
    """The scaler Lambda's template environment resolved against the emulator, and its
    process in its own lab host."""

    def __init__(self, stack, sink: SnsSink, metrics: CloudWatchSink):
        self.stack = stack
        exe = stack.target_dir / "debug" / "airflow-scaler-bootstrap"
        infra.need(str(exe), "the airflow-scaler Lambda (cargo build -p airflow-scaler)")
        self.template = stack.template
        funcs = {k: v for k, v in self.template.of_type("AWS::Lambda::Function").items()
                 if k.lower().startswith("scaler")}
        assert len(funcs) == 1, f"expected one ScalerFunction, found {sorted(funcs)}"
        (self.logical, fn), = funcs.items()
        props = fn["Properties"]
        raw_env = props["Environment"]["Variables"]
        self.ctx = Context(region=stack.ctx.region, stack_name=stack.ctx.stack_name,
                           stack_id=stack.ctx.stack_id, account=stack.ctx.account,
                           refs=dict(stack.ctx.refs), getatts=dict(stack.ctx.getatts),
                           template=self.template)
        for logical in sorted(_targets(raw_env, set())):
            if logical.startswith("AWS::") or logical in self.ctx.refs:
                continue
            self.create(logical, sink)
        self.cluster = stack.cluster_name
        self.env = env = {k: str(v) for k, v in self.ctx.resolve(raw_env).items()}
        # The template's own address: the Cloud Map name, resolved in the scaler's host.
        assert env["AIRFLOW_API_URL"] == f"http://api-server.{stack.namespace}:8080", env["AIRFLOW_API_URL"]
        # In the VPC: its own host, its security group, the template's rule to the api-server
        # (applied with the others at bring-up).
        groups = [g["Fn::GetAtt"][0] for g in props["VpcConfig"]["SecurityGroupIds"]]
        self.service = stack.pool.service_name
        self.host = stack.lab.add_host("scaler", groups)
        role = props["Role"]["Fn::GetAtt"][0]
        role_props = self.template.resources[role]["Properties"]
        policies = [self.ctx.resolve(p["PolicyDocument"]) for p in role_props["Policies"]]
        key = stack.aws.register("scaler-lambda", f"arn:aws:iam::{self.ctx.account}:role/{role}",
                                 policies)
        self.runtime = infra.RuntimeApi(listen_in(self.host.netns, "127.0.0.1"))
        lambda_env = {
            "PATH": "/usr/bin:/bin",
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.runtime.port}",
            "AWS_LAMBDA_FUNCTION_NAME": "airflow-scaler",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(props.get("MemorySize", 128)),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_ENDPOINT_URL": stack.aws.endpoint,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": "e2e",
            "AWS_REGION": stack.region,
            "AWS_DEFAULT_REGION": stack.region,
            "AWS_ENDPOINT_URL_CLOUDWATCH": metrics.url,
        }
        for k in lambda_env:
            assert k not in env, f"the ScalerFunction sets {k}; the test would mask it"
        self.log = stack.workdir / "scaler-lambda.log"
        self.proc = self.host.start("scaler-lambda", [str(exe)], {**lambda_env, **env}, self.log)

    def create(self, logical: str, sink: SnsSink) -> None:
        """What CloudFormation would create for one resource the function refers to."""
        res = self.template.resources[logical]
        raw = res.get("Properties", {})
        # Only the properties the moto call needs (a service's task definition, subnets
        # and so on are not CloudFormation's to supply here).
        keep = {"TableName", "KeySchema", "AttributeDefinitions", "BillingMode", "TopicName",
                "ClusterName", "ServiceName", "Cluster"}
        props = self.ctx.resolve({k: v for k, v in raw.items() if k in keep})
        moto, region = self.stack.aws, self.stack.region
        kind = res["Type"]
        if kind == "AWS::DynamoDB::Table":
            name = props.get("TableName") or f"{self.ctx.stack_name}-{logical}-{uuid.uuid4().hex[:8]}"
            ddb = moto.client("dynamodb", region)
            ddb.create_table(TableName=name, KeySchema=props["KeySchema"],
                             AttributeDefinitions=props["AttributeDefinitions"],
                             BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"))
            self.table = name
            self.ctx.refs[logical] = name
            self.ctx.getatts[(logical, "Arn")] = f"arn:aws:dynamodb:{region}:{self.ctx.account}:table/{name}"
        elif kind == "AWS::SNS::Topic":
            name = props.get("TopicName") or f"{self.ctx.stack_name}-{logical}-{uuid.uuid4().hex[:8]}"
            sns = moto.client("sns", region)
            arn = sns.create_topic(Name=name)["TopicArn"]
            sub = sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=sink.url,
                                ReturnSubscriptionArn=True)["SubscriptionArn"]
            attrs = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
            assert attrs.get("PendingConfirmation") == "false", attrs
            self.ctx.refs[logical] = arn
            self.ctx.getatts[(logical, "TopicArn")] = arn
        else:
            raise AssertionError(f"the ScalerFunction refers to {logical} ({kind}); "
                                 "the test does not know how CloudFormation would create it")

    def tick(self) -> dict:
        """One EventBridge scheduled event; returns the invocation's result (TickReport)."""
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": self.ctx.account, "time": now,
            "region": self.stack.region,
            "resources": [f"arn:aws:events:{self.stack.region}:{self.ctx.account}:rule/"
                          f"{self.ctx.stack_name}-scaler"],
            "detail": {},
        }
        kind, body = self.runtime.invoke(event, timeout=90)
        assert kind == "response", f"the scaler reported an error: {body}\n{self.proc.tail(40)}"
        print(f"[e2e] scaler tick -> {json.dumps(body)}", flush=True)
        return body

    def close(self):
        self.proc.stop()
        self.runtime.close()


pytestmark = pytest.mark.parametrize("stack", ["scaled"], indirect=True)


@pytest.fixture(scope="module")
def sink(stack):
    s = SnsSink(stack.aws.host.netns)
    yield s
    s.close()


@pytest.fixture(scope="module")
def metrics(stack):
    m = CloudWatchSink(stack.aws)
    yield m
    m.close()


@pytest.fixture(scope="module")
def scaler(stack, airflow, sink, metrics):
    s = Scaler(stack, sink, metrics)
    yield s
    s.close()


def _wait_run(airflow, dag_id: str, run_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = airflow.run_state(dag_id, run_id)
        if state in ("success", "failed"):
            return state
        time.sleep(1)
    raise TimeoutError(f"{dag_id} {run_id} still {state} after {timeout:.0f}s")


def test_failed_run_alerts_once(stack, airflow, scaler, sink):
    airflow.wait_dags(["e2e_fails"], timeout=180)
    # A first tick takes in what earlier tests left (their failed runs alert here): the
    # state table then holds every DAG's last run, as it would after a minute in AWS.
    report = scaler.tick()
    assert report["alerts"]["ok"], report
    before = len(sink.notifications())

    run_id = airflow.trigger("e2e_fails")
    # Tick while the run goes on, as the stack's schedule would: the first tick may have
    # begun draining the idle worker (no work, min_workers 0), and only a later tick
    # cancels that drain once the run's task is queued. Waiting without ticks would wait
    # on a worker told to stop consuming.
    _tick_until(scaler, stack, lambda: airflow.run_state("e2e_fails", run_id)
                in ("success", "failed"), timeout=240, every=5)
    assert airflow.run_state("e2e_fails", run_id) == "failed"
    failed = [ti["task_id"] for ti in airflow.task_instances("e2e_fails", run_id)
              if ti["state"] == "failed"]
    assert failed == ["boom"], failed

    report = scaler.tick()
    assert report["alerts"]["ok"], report
    new = sink.notifications()[before:]
    assert len(new) == 1, f"expected one alert, got {len(new)}: {new}"
    subject, message = new[0].get("Subject") or "", new[0]["Message"]
    text = subject + "\n" + message
    print(f"[e2e] alert: {subject!r}\n{message}", flush=True)
    assert "e2e_fails" in subject and "failed" in subject, subject
    assert f"Run: {run_id}" in message, message
    assert "Failed tasks: boom" in message, message
    assert (f"https://airflow.example.com/dags/e2e_fails/runs/"
            f"{urllib.parse.quote(run_id, safe='-_.~')}") in text, text
    assert new[0]["TopicArn"] == scaler.env["SNS_TOPIC_ARN"]

    report = scaler.tick()
    assert report["alerts"]["ok"], report
    again = sink.notifications()[before + 1:]
    assert again == [], f"a second tick alerted again: {again}"
    stack.timings.mark("scaler: one alert per failure")


def test_the_scaler_reads_airflow_as_its_own_read_only_user(stack, airflow, scaler):
    """The scaler logs in with its own user and secret, not the admin's; that user can
    read what the scaler reads and change nothing; no password is on a command line."""
    assert scaler.env["API_USERNAME"] == "airflow-stack-scaler", scaler.env
    secret_arn = scaler.env["API_PASSWORD_SECRET_ARN"]
    assert secret_arn == stack.ctx.refs["ScalerPasswordSecret"], secret_arn
    assert secret_arn != stack.ctx.refs["AdminPasswordSecret"]
    password = stack.secret("ScalerPasswordSecret")
    assert password != airflow.password and password.isalnum(), "a password of its own"

    reader = Airflow(stack.api_url, "airflow-stack-scaler", password)
    reader.login()
    runs = reader.get("/api/v2/dags/~/dagRuns", limit=5)
    assert runs["total_entries"] > 0, runs
    reader.get("/api/v2/dags/~/dagRuns/~/taskInstances", limit=5, state="running")
    writes = {
        "pause a DAG": lambda: reader.patch("/api/v2/dags/e2e_fails", {"is_paused": True}),
        "trigger a run": lambda: reader.post("/api/v2/dags/e2e_fails/dagRuns",
                                             {"logical_date": None}),
        "set a Variable": lambda: reader.post("/api/v2/variables",
                                              {"key": "e2e_scaler_wrote", "value": "x"}),
    }
    for what, call in writes.items():
        with pytest.raises(ApiError) as refused:
            call()
        assert refused.value.status == 403, f"{what}: {refused.value}"

    # The migration task created the user with the password fed on standard input.
    _, migrate = stack.template.container("migrate")
    script = " ".join(migrate["Command"])
    assert "--password" not in script and "airflow-stack-scaler --role Viewer" in script, script
    log = (stack.workdir / "migrate.migrate.log").read_text(errors="replace")
    assert password not in log and airflow.password not in log, "a password in the log"


def _ti_busy_at(tis: list[dict], ip: str, when: float) -> list[str]:
    """Task instances running on the worker at `ip` at epoch time `when`."""
    busy = []
    for ti in tis:
        if ti.get("hostname") != ip or not ti.get("start_date"):
            continue
        start = dt.datetime.fromisoformat(ti["start_date"].replace("Z", "+00:00")).timestamp()
        end = (dt.datetime.fromisoformat(ti["end_date"].replace("Z", "+00:00")).timestamp()
               if ti.get("end_date") else float("inf"))
        if start <= when < end:
            busy.append(ti["task_id"])
    return busy


def _wait_state(airflow, dag_id: str, run_id: str) -> bool:
    return airflow.run_state(dag_id, run_id) in ("success", "failed")


def _tick_until(scaler, stack, done, timeout: float, every: float = 10.0) -> list[dict]:
    reports = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reports.append(scaler.tick())
        if done():
            return reports
        time.sleep(every)
    raise AssertionError(f"not reached within {timeout:.0f}s; pool events: "
                         f"{stack.pool.events}\nlast tick: {reports[-1:]}")


def _drained_for_the_stop(stack, task_name: str, until: float) -> tuple[float | None, str]:
    """Epoch time of the worker's "drained" line that still held at `until` (the stop),
    or None, with the module's lines that decided it. Its own log is the witness, not
    the tag history: the worker reads its tags every 10 s, so a tag taken off and put
    back within one poll is a drain it never saw cancelled (stop 29's run: untagged at
    +7.1 s, tagged again at +12.6 s, "drained" at +9.1 s, in between). A later
    "drain cancelled", "draining" or task received before `until` means the drain
    that counts had not finished by then."""
    path = stack.workdir / f"{task_name}.worker.log"
    drained, seen = None, []
    for line in path.read_text(errors="replace").splitlines():
        if "[airflow_stack.worker]" not in line:
            continue
        at = dt.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
        if at > until:
            break
        seen.append(line[:120])
        if " drained " in f"{line} ":
            drained = at
        elif any(k in line for k in ("drain cancelled", "draining:", "task received")):
            drained = None
    return drained, "\n".join(seen[-8:])


def _first_tagged(events: list[dict]) -> dict[str, float]:
    """Per task, when the scaler first put the drain tag on it."""
    first: dict[str, float] = {}
    for e in events:  # in the emulator's order
        if e["kind"] == "task-tagged" and e["tags"].get("airflow-stack:drain") == "true":
            first.setdefault(e["task"], e["time"])
    return first


BURSTS = 2  # scale-out and scale-in cycles while the long task runs


def test_scale_in_never_stops_a_busy_worker(stack, airflow, scaler, metrics):
    """A long task holds one worker; bursts of short tasks make the scaler add a worker
    and, when each burst is over, drain and remove it again, repeatedly, while the long
    task runs. Not one task instance is lost or restarted; every task ECS stopped was
    tagged, drained (its own log says so) and idle before the count went down."""
    airflow.wait_dags(["e2e_long", "e2e_burst"], timeout=180)
    pool, ecs = stack.pool, stack.aws.client("ecs", stack.region)
    assert int(scaler.env["WORKER_CONCURRENCY"]) == 2, scaler.env["WORKER_CONCURRENCY"]
    assert scaler.env["COOLDOWN_MINUTES"] == "0", scaler.env["COOLDOWN_MINUTES"]

    def desired() -> int:
        return ecs.describe_services(cluster=scaler.cluster,
                                     services=[scaler.service])["services"][0]["desiredCount"]

    # 1. The worker the alert test's ticks left idle is drained and stopped.
    _tick_until(scaler, stack, lambda: desired() == 0 and pool.settled(0), timeout=150)
    stack.timings.mark("scaler: idle worker scaled in to zero")

    # 2. From zero workers: trigger, the task queues, one tick decides, a worker starts.
    triggered = time.monotonic()
    long_run = airflow.trigger("e2e_long")
    wait_for("the long task queued", lambda: [ti["state"] for ti in airflow.task_instances(
        "e2e_long", long_run)] == ["queued"], timeout=120, interval=0.5)
    queued = time.monotonic()
    report = scaler.tick()
    tick_done = time.monotonic()
    assert report["scaling"]["ok"] and desired() == 1, (report, desired())
    wait_for("the long task running", lambda: [ti["state"] for ti in airflow.task_instances(
        "e2e_long", long_run)] == ["running"], timeout=240, interval=0.5)
    first = time.monotonic()
    print(f"[e2e] FIGURE zero workers -> first task running: {first - triggered:.1f}s = "
          f"queued {queued - triggered:.1f}s + scaler tick {tick_done - queued:.1f}s + "
          f"worker start to first task {first - tick_done:.1f}s", flush=True)
    stack.timings.mark("scaler: zero to first task")

    # 3. Bursts around the long task: out to two workers, back in to one, each time.
    bursts = []
    for n in range(BURSTS):
        stops_before = len([e for e in pool.events if e["kind"] == "stopped"])
        burst = airflow.trigger("e2e_burst")
        bursts.append(burst)
        _tick_until(scaler, stack, lambda: desired() == 2, timeout=60, every=5)
        _tick_until(scaler, stack, lambda: _wait_state(airflow, "e2e_burst", burst), timeout=180)
        # Settled: the stop ECS decided has finished and the pool has recorded it, so the
        # next burst's count starts clean and step 5 sees every stop.
        _tick_until(scaler, stack, lambda: desired() == 1 and pool.settled(1) and len(
            [e for e in pool.events if e["kind"] == "stopped"]) > stops_before, timeout=150,
            every=5)
        assert airflow.run_state("e2e_long", long_run) == "running", \
            f"the long task ended before scale-in {n + 1}"
        stack.timings.mark(f"scaler: burst {n + 1} out and in")

    # 4. Release the long task; every task instance ran once and succeeded.
    airflow.set_variable("e2e_long_release", long_run)
    assert _wait_run(airflow, "e2e_long", long_run, timeout=120) == "success"
    tis = airflow.task_instances("e2e_long", long_run)
    for burst in bursts:
        assert _wait_run(airflow, "e2e_burst", burst, timeout=30) == "success"
        tis += airflow.task_instances("e2e_burst", burst)
    lost = [(ti["dag_id"], ti["task_id"], ti["state"], ti["try_number"]) for ti in tis
            if ti["state"] != "success" or ti["try_number"] != 1]
    assert not lost, f"task instances lost or restarted: {lost}"
    assert len(tis) == 1 + 3 * BURSTS, tis

    # 5. What ECS did, against what the workers did.
    events = pool.ecs_events()
    stops = [e for e in events if e["kind"] == "task-stop"]
    counts = [e for e in events if e["kind"] == "desired-count"]
    tagged = _first_tagged(events)
    print("[e2e] ECS events:\n  " + "\n  ".join(
        f"{e['time']:.1f} {e['kind']} {e.get('task', '')[-12:]} "
        f"{ {k: v for k, v in e.items() if k not in ('seq', 'time', 'kind', 'task')} }"
        for e in events if e["kind"] != "service-managed"), flush=True)
    long_ti = airflow.task_instances("e2e_long", long_run)[0]
    stopped = {e["ip"]: e for e in pool.events if e["kind"] == "stopped"}
    while_long_ran = 0
    for stop in stops:
        assert stop["task"] in tagged, (
            f"ECS stopped {stop['task']} ({stop['ip']}), which the scaler never tagged")
        busy = _ti_busy_at(tis, stop["ip"], stop["time"])
        assert not busy, f"ECS stopped the worker at {stop['ip']} while it ran {busy}"
        lowered = [c for c in counts if c["time"] <= stop["time"]]
        assert lowered, f"{stop}: stopped with no count lowered before it"
        worker = stopped.get(stop["ip"])
        assert worker is not None and not worker["killed"], f"{stop}: {worker}"
        drained, lines = _drained_for_the_stop(stack, worker["task"], until=stop["time"])
        assert drained is not None, (
            f"{worker['task']}: not drained when ECS stopped it; its module's last lines:\n{lines}")
        assert tagged[stop["task"]] <= drained <= lowered[-1]["time"], (
            "the count went down before the chosen worker drained",
            {"tagged": tagged[stop["task"]], "drained": drained, "lowered": lowered[-1]},
            lines)
        while_long_ran += bool(_ti_busy_at([long_ti], long_ti["hostname"], stop["time"]))
    assert while_long_ran >= BURSTS, (
        f"expected {BURSTS} scale-ins while the long task ran, saw {while_long_ran}")
    stack.timings.mark("scaler: scale-in while busy")
