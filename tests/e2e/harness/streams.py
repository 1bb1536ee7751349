"""`streams:` played locally (issue 17): a vendor's SSE stream, and the stream resources
of the template created in the AWS emulator as CloudFormation would create them.

The shape: the `scaled` stack (NAT gateway and SNS alerts on) with one stream, `orders`,
appended by `with_streams`. What CloudFormation would create and the harness did not (the
events table with its stream, the dead-letter queue, the alert topic, the three functions'
roles, the functions, their event invoke configs and the event source mapping) is created
here from the template's own properties, resolved against what exists (`StreamsInAws`).
The emulator then does what Lambda does: runs each function as its role, lets the manager
invoke its successor asynchronously, and feeds the table's stream to the processor through
the mapping (filters, batches, partial failures, the DLQ).

Where the run differs from AWS, and why:
- The vendor: an SSE server with TLS (`StreamServer`), in the emulator's own host on
  127.0.0.1:8443, because a function outside a VPC runs there (on AWS it reaches the
  internet). Its certificate is issued by the run's CA; the manager trusts it through
  `SSL_CERT_FILE` (OpenSSL's convention, which the stream client honours besides the
  webpki roots). The stack file's URL is `https://localhost:8443/orders`.
- A short deadline: the manager is created with `Timeout` 24 s instead of 900, and its
  handover, overlap, heartbeat and lease with seconds to match (`MANAGER_TIMINGS`), so a
  minute of stream sees several relaunches; the watchdog's stale limit is 12 s. The
  stack file's own `read_timeout_seconds: 5` (the least allowed) is the template's.
- The processor runs in the VPC as the template puts it: in a lab host of its own with
  `StreamProcessorSecurityGroup`, reaching the api-server by its Cloud Map name through the
  template's ingress rule (registered with the emulator: POST /_emulator/function-hosts).
  The emulator itself runs inside a lab host, where the cgroup tree is not mounted, so
  the host is entered without the cgroup step of `Host.enter_argv`: the processor's
  memory and CPU are not limited (Lambda's are, to its MemorySize).
- No auth header: the stream's `auth.secret` must be an ARN written in the stack file
  before the emulator exists, and the emulator names a secret's ARN with a random suffix.
  The header path is covered by lambdas/streams's tests against a local server.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from . import infra
from .nsbind import listen_in

STREAM = "orders"
STREAM_PORT = 8443
STREAM_URL = f"https://localhost:{STREAM_PORT}/{STREAM}"
DAG_ID = "e2e_stream"
READ_TIMEOUT_SECONDS = 5

BLOCK = f"""
streams:
  - name: {STREAM}   # e2e: tests/e2e/harness/streams.py
    url: {STREAM_URL}
    format: sse
    id_field: id
    target: {{dag: {DAG_ID}}}
    read_timeout_seconds: {READ_TIMEOUT_SECONDS}
"""

# The manager's Lambda timeout and timings in the e2e (the template's: 900, 60, 20, 20, 90).
MANAGER_TIMEOUT_SECONDS = 24
MANAGER_TIMINGS = {"HANDOFF_SECONDS": "10", "OVERLAP_SECONDS": "5", "HEARTBEAT_SECONDS": "2",
                   "LEASE_SECONDS": "6"}
WATCHDOG_STALE_SECONDS = "12"


def with_streams(stack_file: Path) -> Path:
    """`stack_file` (which must turn on a NAT gateway) with the `orders` stream, in place."""
    text = stack_file.read_text()
    assert "\nstreams:" not in text, f"{stack_file} already has streams"
    assert re.search(r"^\s*nat_gateways:\s*1\s*$", text, re.M), f"{stack_file}: streams need a NAT"
    stack_file.write_text(text + BLOCK)
    return stack_file


def run_id_of(identity: str) -> str:
    """The DAG run id the processor gives an event (contract::streams::dag_run_id): the
    first 32 hex digits of the SHA-256 of its identity."""
    return f"stream__{STREAM}__{hashlib.sha256(identity.encode()).hexdigest()[:32]}"


# --- the vendor ------------------------------------------------------------------------

class Timeline:
    """What the vendor sends, in order: SSE ids 1, 2, ... each released at its offset
    (seconds after `start`). `repeat` entries send an earlier event's data again under a
    new SSE id (a vendor redelivering). `drop_after` names the SSE id after which the
    first connection that sends it is cut, once."""

    def __init__(self):
        self.entries: list[tuple[int, float, dict]] = []  # (sse id, offset, payload)
        self.drop_after: int | None = None

    def add(self, offset: float, payload: dict) -> int:
        sse_id = len(self.entries) + 1
        self.entries.append((sse_id, offset, payload))
        return sse_id

    def distinct(self) -> dict[str, dict]:
        """Event identity (the `id` field) -> payload."""
        return {p["id"]: p for _, _, p in self.entries}


def order(n: int, phase: str) -> dict:
    return {"id": f"order-{n:04d}", "n": n, "phase": phase, "amount": round(n * 1.25, 2),
            "lines": [{"sku": f"sku-{n % 7}", "qty": n % 3 + 1}]}


class StreamServer:
    """An SSE server over TLS in `netns` on 127.0.0.1:`port`: each connection gets the
    timeline's events after its `Last-Event-ID`, each as soon as it is released; records
    every connection (when, which Last-Event-ID) and when each event identity was first
    sent."""

    def __init__(self, netns: str, ca, workdir: Path, port: int = STREAM_PORT):
        tls_dir = workdir / "stream-tls"
        tls_dir.mkdir()
        cert, key = ca.issue("localhost", tls_dir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.timeline = Timeline()
        self.started: float | None = None  # time.time() of offset 0
        self.first_sent: dict[str, float] = {}
        self.connections: list[dict] = []
        self.dropped = False
        self.closing = threading.Event()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path != f"/{STREAM}":
                    self.send_error(404)
                    return
                last = self.headers.get("Last-Event-ID")
                with server.lock:
                    server.connections.append({"at": time.time(), "last_event_id": last})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                self.wfile.flush()
                server.serve(self, int(last) if last and last.isdigit() else 0)

        sock = listen_in(netns, "127.0.0.1", port)
        self.http = infra._Server.on(sock, Handler)
        # The handshake in the handler's thread, not in accept(): a client that stalls in
        # it must not stop the server accepting others.
        self.http.socket = context.wrap_socket(self.http.socket, server_side=True,
                                               do_handshake_on_connect=False)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def start(self) -> None:
        self.started = time.time()

    def serve(self, handler, after: int) -> None:
        """Sends the events after SSE id `after` until the connection breaks or the
        server closes; nothing is sent before `start`."""
        index = after  # entries[index] has SSE id index + 1
        try:
            while not self.closing.is_set():
                if self.started is None or index >= len(self.timeline.entries):
                    time.sleep(0.05)
                    continue
                sse_id, offset, payload = self.timeline.entries[index]
                wait = self.started + offset - time.time()
                if wait > 0:
                    time.sleep(min(wait, 0.05))
                    continue
                data = json.dumps(payload, separators=(",", ":"))
                handler.wfile.write(f"id: {sse_id}\ndata: {data}\n\n".encode())
                handler.wfile.flush()
                with self.lock:
                    self.first_sent.setdefault(payload["id"], time.time())
                    drop = self.timeline.drop_after == sse_id and not self.dropped
                    if drop:
                        self.dropped = True
                index += 1
                if drop:
                    return  # the connection is closed under the reader
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            return

    def close(self) -> None:
        self.closing.set()
        self.http.shutdown()
        self.http.server_close()


# --- the template's stream resources in the emulator -------------------------------------

def streams_zip(target_dir: Path, arch: str) -> bytes:
    """The airflow-streams Lambda zip lambdas/build.sh made (what deploy uploads)."""
    path = target_dir / "lambda" / arch / "airflow-streams" / "bootstrap.zip"
    infra.need(str(path), "the airflow-streams Lambda zip (bash lambdas/build.sh)")
    data = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.namelist() == ["bootstrap"], z.namelist()
    return data


class StreamsInAws:
    """The stream resources of the stack's template, created in the emulator."""

    def __init__(self, stack, ctx, sink_url: str, ca_cert: Path):
        self.stack, self.ctx, self.t = stack, ctx, stack.template
        self.aws = stack.aws
        self.lam = self.aws.client("lambda")
        (self.manager_logical, manager), = [
            (k, v) for k, v in self.t.of_type("AWS::Lambda::Function").items()
            if v["Properties"].get("Environment", {}).get("Variables", {}).get("ROLE") == "manager"]
        self.manager = manager["Properties"]["FunctionName"]
        self.processor_logical = self._function_with_role("processor")
        self.watchdog_logical = self._function_with_role("watchdog")
        self._table()
        self._queue()
        self._topic(sink_url)
        arch = manager["Properties"]["Architectures"][0]
        self.code = streams_zip(stack.target_dir, arch)
        self.functions: dict[str, str] = {}
        extra = {
            self.manager_logical: {**MANAGER_TIMINGS, "SSL_CERT_FILE": str(ca_cert)},
            self.watchdog_logical: {"STALE_SECONDS": WATCHDOG_STALE_SECONDS},
        }
        for logical in (self.manager_logical, self.processor_logical, self.watchdog_logical):
            self._function(logical, extra.get(logical, {}))
        for _, res in self.t.of_type("AWS::Lambda::EventInvokeConfig").items():
            if res["Properties"]["FunctionName"].get("Ref") not in self.functions:
                continue  # the scaler's: its test runs that function itself
            p = self.ctx.resolve(res["Properties"])
            self.lam.put_function_event_invoke_config(
                FunctionName=p["FunctionName"], Qualifier=p["Qualifier"],
                MaximumRetryAttempts=p["MaximumRetryAttempts"],
                MaximumEventAgeInSeconds=p["MaximumEventAgeInSeconds"])
        self.processor_host = self._host_processor()
        self._mapping()

    def _function_with_role(self, role: str) -> str:
        found = [k for k, v in self.t.of_type("AWS::Lambda::Function").items()
                 if v["Properties"].get("Environment", {}).get("Variables", {}).get("ROLE") == role]
        assert len(found) == 1, f"expected one {role} function, found {found}"
        return found[0]

    def _table(self) -> None:
        # The events table: the one with a stream (the scaler's state table has none).
        logical, res = next((k, v) for k, v in self.t.of_type("AWS::DynamoDB::Table").items()
                            if v["Properties"].get("StreamSpecification"))
        p = self.ctx.resolve(res["Properties"])
        ddb = self.aws.client("dynamodb")
        name = f"{self.ctx.stack_name}-{logical}-{uuid.uuid4().hex[:8]}"
        desc = ddb.create_table(TableName=name, KeySchema=p["KeySchema"],
                                AttributeDefinitions=p["AttributeDefinitions"],
                                BillingMode=p["BillingMode"],
                                StreamSpecification={"StreamEnabled": True,
                                                     **p["StreamSpecification"]})["TableDescription"]
        ttl = p["TimeToLiveSpecification"]
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": ttl["Enabled"]})
        self.table = name
        self.ctx.refs[logical] = name
        self.ctx.getatts[(logical, "Arn")] = desc["TableArn"]
        self.ctx.getatts[(logical, "StreamArn")] = desc["LatestStreamArn"]

    def _queue(self) -> None:
        logical, res = self.t.one_of_type("AWS::SQS::Queue")
        p = res["Properties"]
        sqs = self.aws.client("sqs")
        url = sqs.create_queue(QueueName=f"{self.ctx.stack_name}-{logical}-{uuid.uuid4().hex[:8]}",
                               Attributes={"MessageRetentionPeriod": str(p["MessageRetentionPeriod"]),
                                           "SqsManagedSseEnabled": "true"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.dlq_url = url
        self.ctx.refs[logical] = url
        self.ctx.getatts[(logical, "Arn")] = arn

    def _topic(self, sink_url: str) -> None:
        logical, _ = self.t.one_of_type("AWS::SNS::Topic")
        sns = self.aws.client("sns")
        arn = sns.create_topic(Name=f"{self.ctx.stack_name}-{logical}-streams-{uuid.uuid4().hex[:8]}")["TopicArn"]
        sub = sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=sink_url,
                            ReturnSubscriptionArn=True)["SubscriptionArn"]
        attrs = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
        assert attrs.get("PendingConfirmation") == "false", attrs
        self.ctx.refs[logical] = arn

    def _role(self, logical: str) -> str:
        props = self.t.resources[logical]["Properties"]
        iam = self.aws.client("iam")
        name = f"{self.ctx.stack_name}-{logical}"[:64]
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(
            props["AssumeRolePolicyDocument"]))["Role"]["Arn"]
        for policy in props.get("Policies", []):
            iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"],
                                PolicyDocument=json.dumps(self.ctx.resolve(policy["PolicyDocument"])))
        assert not props.get("ManagedPolicyArns"), f"{logical}: managed policies"
        self.ctx.getatts[(logical, "Arn")] = arn
        return arn

    def _function(self, logical: str, extra_env: dict[str, str]) -> None:
        raw = self.t.resources[logical]["Properties"]
        role = self._role(raw["Role"]["Fn::GetAtt"][0])
        name = self.ctx.ref(logical)  # FunctionName, or the name CloudFormation would make
        env = {k: str(v) for k, v in self.ctx.resolve(raw["Environment"]["Variables"]).items()}
        for k in extra_env:
            assert k not in env or k.endswith("_SECONDS"), f"{logical} sets {k}; the test would mask it"
        env.update(extra_env)
        kwargs = dict(FunctionName=name, Runtime=raw["Runtime"], Role=role, Handler=raw["Handler"],
                      Code={"ZipFile": self.code}, MemorySize=raw["MemorySize"],
                      Timeout=(MANAGER_TIMEOUT_SECONDS if logical == self.manager_logical
                               else raw["Timeout"]),
                      Architectures=raw["Architectures"], Environment={"Variables": env},
                      LoggingConfig={"LogFormat": raw["LoggingConfig"]["LogFormat"],
                                     "LogGroup": self.ctx.resolve(raw["LoggingConfig"]["LogGroup"])})
        if "VpcConfig" in raw:
            # The subnets and group are the lab host's (see _host_processor); moto only
            # needs VpcConfig to exist.
            kwargs["VpcConfig"] = {"SubnetIds": ["subnet-e2e-private"],
                                   "SecurityGroupIds": ["sg-e2e-stream-processor"]}
        self.lam.create_function(**kwargs)
        if "ReservedConcurrentExecutions" in raw:
            self.lam.put_function_concurrency(
                FunctionName=name, ReservedConcurrentExecutions=raw["ReservedConcurrentExecutions"])
        if raw.get("RecursiveLoop"):
            self.lam.put_function_recursion_config(FunctionName=name,
                                                   RecursiveLoop=raw["RecursiveLoop"])
        self.functions[logical] = name

    def _host_processor(self):
        """The processor's lab host: its security group, entered without the cgroup step
        (see the module's docstring)."""
        raw = self.t.resources[self.processor_logical]["Properties"]
        groups = [g["Fn::GetAtt"][0] for g in raw["VpcConfig"]["SecurityGroupIds"]]
        host = self.stack.lab.add_host("stream-processor", groups)
        # `ip netns exec` alone. The cgroup step of Host.enter_argv fails inside the
        # emulator's own lab host, whose mount namespace has no cgroup tree; the hostname
        # step is left out too, as nothing in the processor reads its hostname.
        t = host.lab.t
        body = {"function": self.functions[self.processor_logical], "netns": host.netns,
                "argv_prefix": [t.ip, "netns", "exec", host.netns],
                "endpoint": self.aws.endpoint}
        req = urllib.request.Request(self.aws.endpoint + "/_emulator/function-hosts",
                                     method="POST", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                assert resp.status == 200, resp.status
        except urllib.error.HTTPError as e:
            raise AssertionError(f"registering the processor's host: {e.code} {e.read()!r}") from None
        return host

    def _mapping(self) -> None:
        _, res = self.t.one_of_type("AWS::Lambda::EventSourceMapping")
        p = self.ctx.resolve(res["Properties"])
        keys = ("EventSourceArn", "FunctionName", "BatchSize", "BisectBatchOnFunctionError",
                "DestinationConfig", "FilterCriteria", "FunctionResponseTypes",
                "MaximumBatchingWindowInSeconds", "MaximumRecordAgeInSeconds",
                "MaximumRetryAttempts", "StartingPosition")
        assert set(p) <= set(keys) | {"Enabled"}, sorted(set(p) - set(keys))
        self.mapping = self.lam.create_event_source_mapping(**{k: p[k] for k in keys if k in p})["UUID"]

    # --- reading what happened ---------------------------------------------------------

    def log_lines(self, logical: str) -> list[dict]:
        """Every JSON line the function wrote to its log group (as the administrator)."""
        group = self.ctx.resolve(self.t.resources[logical]["Properties"]["LoggingConfig"]["LogGroup"])
        logs = self.aws.client("logs")
        out, token = [], None
        while True:
            kwargs = {"logGroupName": group}
            if token:
                kwargs["nextToken"] = token
            page = logs.filter_log_events(**kwargs)
            for e in page.get("events", []):
                try:
                    out.append(json.loads(e["message"]))
                except ValueError:
                    out.append({"raw": e["message"]})
            token = page.get("nextToken")
            if not token:
                return out

    def manager_reports(self) -> list[dict]:
        """The report each manager run logged when it stopped."""
        reports = []
        for line in self.log_lines(self.manager_logical):
            fields = line.get("fields") or {}
            if fields.get("message") == "manager stopped" and "report" in fields:
                reports.append(json.loads(fields["report"]))
        return reports

    def items(self) -> list[dict]:
        ddb = self.aws.client("dynamodb")
        out, start = [], None
        while True:
            kwargs = {"TableName": self.table}
            if start:
                kwargs["ExclusiveStartKey"] = start
            page = ddb.scan(**kwargs)
            out += page["Items"]
            start = page.get("LastEvaluatedKey")
            if not start:
                return out

    def invoke_manager_async(self, payload: dict) -> None:
        status = self.lam.invoke(FunctionName=self.manager, InvocationType="Event",
                                 Payload=json.dumps(payload).encode())["StatusCode"]
        assert status == 202, status

    def tick_watchdog(self) -> dict:
        """One EventBridge scheduled event to the watchdog (the rule's target); its report."""
        event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                 "source": "aws.events", "account": self.ctx.account, "region": self.ctx.region,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "detail": {},
                 "resources": []}
        out = self.lam.invoke(FunctionName=self.functions[self.watchdog_logical],
                              Payload=json.dumps(event).encode())
        body = out["Payload"].read()
        assert "FunctionError" not in out, body
        return json.loads(body)
