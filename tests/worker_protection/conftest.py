"""Fixtures of the worker-protection tests (src/stack/worker/airflow_stack_worker.py):
a redis-server broker, a fake ECS (agent, task metadata endpoint, the ECS API's
ListTagsForResource) and real Celery worker processes of worker_protection_app.py.
Everything binds 127.0.0.1 on a free port and is stopped by its fixture, also when the
test fails.

test_airflow_config.py is collected only when AIRFLOW_STACK_AIRFLOW_PYTHON names the
python of an Airflow 3 venv (e.g. /var/cache/airflow-stack/airflow-3.3.2/bin/python)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MODULE_DIR = HERE.parents[1] / "src" / "stack" / "worker"
DRAIN_TAG = "airflow-stack:drain"

if not os.environ.get("AIRFLOW_STACK_AIRFLOW_PYTHON"):
    collect_ignore = ["test_airflow_config.py"]


def pytest_configure(config):
    # No silent skips: without redis-server or Celery nothing here can run, so say so.
    problems = []
    if not shutil.which("redis-server"):
        problems.append("`redis-server` missing (apt-get install redis-server)")
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        problems.append("celery[redis] missing from this python (tests/run-all.sh installs it)")
    if problems:
        raise pytest.UsageError("tests/worker_protection: " + "; ".join(problems))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --- redis-server -------------------------------------------------------------------------

class Redis:
    def __init__(self, port: int):
        import redis

        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.client = redis.Redis(host="127.0.0.1", port=port)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no"],
        stdout=open(workdir / "redis.log", "w"), stderr=subprocess.STDOUT)
    try:
        server = Redis(port)

        def ping():
            try:
                return server.client.ping()
            except Exception:
                assert proc.poll() is None, (workdir / "redis.log").read_text()
                return False

        wait_for("redis-server", ping, 10)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def redis(redis_server):
    redis_server.client.flushall()
    return redis_server


# --- fake ECS: agent (task-protection), task metadata v4 and the ECS API's tags ------------

# What a Fargate task can use (AWS docs): "Amazon ECS task metadata endpoint version 4 for
# tasks on Fargate" lists ${ECS_CONTAINER_METADATA_URI_V4}, /task, /stats and /task/stats;
# /taskWithTags is on "Amazon ECS task metadata endpoint version 4", for tasks on EC2
# only, so here it is 404 as on Fargate. The tags come from the ECS API's
# ListTagsForResource (Amazon ECS API Reference; JSON 1.1 protocol, the operation named by
# X-Amz-Target), which the worker reaches through AWS_ENDPOINT_URL.
ECS_TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
ACCESS_KEY_ID = "AKIDWORKERTASKROLE01"
SECRET_ACCESS_KEY = "worker-protection-secret-never-logged"


class FakeEcs:
    """Records every PUT to the protection endpoint as (time.time(), enabled, expires),
    every request to the task metadata endpoint as (method, path), and every ECS API call
    as a dict (operation, resourceArn, the signature's access key and region)."""

    task_arn = "arn:aws:ecs:eu-west-1:123456789012:task/airflow/0123456789abcdef"

    def __init__(self):
        self.lock = threading.Lock()
        self.enabled = False
        self.puts: list[tuple[float, bool, int | None]] = []
        self.tags: dict[str, str] = {}
        self.metadata_requests: list[tuple[str, str]] = []
        self.api_calls: list[dict] = []
        self.api_status: int | None = None  # set: the ECS API answers this error status
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        port = self.server.server_address[1]
        self.agent_uri = f"http://127.0.0.1:{port}/api/agent-0123"
        self.metadata_uri = f"http://127.0.0.1:{port}/v4/meta-0123"
        self.api_endpoint = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def state(self):
        return {"protection": {"ProtectionEnabled": self.enabled, "TaskArn": self.task_arn}}

    def set_tags(self, tags):
        with self.lock:
            self.tags = dict(tags)

    def fail_api(self, status):
        """The ECS API answers `status` (None: normally again)."""
        with self.lock:
            self.api_status = status

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code, body, content_type="application/json"):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                with fake.lock:
                    if self.path == "/api/agent-0123/task-protection/v1/state":
                        return self.reply(200, fake.state())
                    if self.path.startswith("/v4/meta-0123"):
                        fake.metadata_requests.append(("GET", self.path))
                        if self.path == "/v4/meta-0123/task":
                            return self.reply(200, {
                                "Cluster": fake.task_arn.split(":task/")[0] + ":cluster/"
                                           "airflow",
                                "TaskARN": fake.task_arn, "LaunchType": "FARGATE",
                                "Containers": [{"Name": "worker"}]})
                        if self.path == "/v4/meta-0123/taskWithTags":
                            return self.reply(404, {"error": "taskWithTags is documented "
                                                    "for tasks on EC2 only, not Fargate"})
                self.reply(404, {"error": {"Code": "NotFound", "Message": self.path}})

            def do_PUT(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    if self.path != "/api/agent-0123/task-protection/v1/state":
                        return self.reply(404, {"error": {"Code": "NotFound"}})
                    fake.enabled = bool(body["ProtectionEnabled"])
                    fake.puts.append((time.time(), fake.enabled, body.get("ExpiresInMinutes")))
                    self.reply(200, fake.state())

            def api_error(self, code, kind, message):
                self.reply(code, {"__type": kind, "message": message},
                           "application/x-amz-json-1.1")

            def do_POST(self):
                """The ECS JSON API: ListTagsForResource only."""
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target") or ""
                # SigV4: "AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/ecs/aws4_request"
                auth = self.headers.get("Authorization") or ""
                scope = auth.split("Credential=", 1)[1].split(",")[0].split("/") \
                    if "Credential=" in auth else []
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = None
                with fake.lock:
                    fake.api_calls.append({
                        "path": self.path, "target": target,
                        "operation": target.removeprefix(ECS_TARGET_PREFIX),
                        "resourceArn": (body or {}).get("resourceArn"),
                        "access_key": scope[0] if scope else None,
                        "region": scope[2] if len(scope) > 2 else None,
                        "service": scope[3] if len(scope) > 3 else None})
                    if self.path != "/" or target != ECS_TARGET_PREFIX + "ListTagsForResource":
                        return self.api_error(400, "UnknownOperationException", target)
                    if body is None:
                        return self.api_error(400, "SerializationException", "not JSON")
                    if len(scope) < 4 or scope[3] != "ecs":
                        return self.api_error(403, "MissingAuthenticationTokenException",
                                              "no SigV4 signature for ecs")
                    if fake.api_status is not None:
                        return self.api_error(fake.api_status, "ServerException", "failing")
                    if body.get("resourceArn") != fake.task_arn:
                        return self.api_error(400, "InvalidParameterException",
                                              f"not this task: {body.get('resourceArn')}")
                    tags = [{"key": k, "value": v} for k, v in fake.tags.items()]
                self.reply(200, {"tags": tags}, "application/x-amz-json-1.1")

        return Handler

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ecs():
    fake = FakeEcs()
    try:
        yield fake
    finally:
        fake.close()


# --- Celery worker processes --------------------------------------------------------------

# Short timings so a test sees renewals, the idle grace and tag changes within seconds.
FAST = {
    "AIRFLOW_STACK_DRAIN_TAG": DRAIN_TAG,
    "AIRFLOW_STACK_PROTECTION_MINUTES": "1",
    "AIRFLOW_STACK_PROTECTION_RENEW_SECONDS": "2",
    "AIRFLOW_STACK_WORKER_TICK_SECONDS": "0.5",
    "AIRFLOW_STACK_IDLE_GRACE_SECONDS": "3",
    "AIRFLOW_STACK_TAG_POLL_SECONDS": "0.5",
}


class Worker:
    def __init__(self, proc, log_path: Path, record_path: Path, hostname: str, broker_url: str):
        from celery import Celery

        self.proc = proc
        self.log_path = log_path
        self.record_path = record_path
        self.hostname = hostname
        self.client = Celery("worker_protection_client", broker=broker_url)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text, timeout=15):
        def seen():
            assert self.proc.poll() is None, f"worker exited:\n{self.log()}"
            return text in self.log()
        try:
            wait_for(f"{text!r} in the worker log", seen, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log ---\n{self.log()}") from None

    def send(self, label, seconds):
        self.client.send_task("hold", args=[label, seconds], queue="default")
        return time.time()

    def records(self):
        if not self.record_path.exists():
            return []
        return [json.loads(line) for line in self.record_path.read_text().splitlines()]

    def record(self, label, event):
        return next((r for r in self.records() if r["label"] == label and r["event"] == event),
                    None)

    def wait_record(self, label, event, timeout=20):
        try:
            return wait_for(f"task {label} {event}", lambda: self.record(label, event), timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log ---\n{self.log()}") from None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        # The worker's own process group (start_new_session): its pool children too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.client.close()


@pytest.fixture
def start_worker(redis, tmp_path, request):
    """start_worker(env) -> a ready Worker; env adds to (or, with value None, removes from)
    the worker's environment."""
    started: list[Worker] = []

    def start(env: dict[str, str | None]) -> Worker:
        hostname = f"wp-{request.node.name[:40]}-{len(started)}@127.0.0.1"
        log_path = tmp_path / f"worker-{len(started)}.log"
        record_path = tmp_path / f"records-{len(started)}.jsonl"
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("ECS_", "AIRFLOW_STACK_", "AWS_"))}
        full_env.update({
            "PYTHONPATH": os.pathsep.join([str(MODULE_DIR), str(HERE)]),
            "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ in src/stack/worker
            "WORKER_PROTECTION_BROKER_URL": redis.url,
            "WORKER_PROTECTION_RECORD": str(record_path),
        })
        for key, value in env.items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker_protection_app", "worker",
             "--pool", "prefork", "--concurrency", "2", "--prefetch-multiplier", "1",
             "--loglevel", "INFO", "--hostname", hostname, "--queues", "default",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=tmp_path, env=full_env, stdin=subprocess.DEVNULL,
            stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        worker = Worker(proc, log_path, record_path, hostname, redis.url)
        started.append(worker)
        worker.wait_log(" ready.", timeout=30)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
