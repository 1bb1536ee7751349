#!/usr/bin/env python3
"""moto 5.2.5 server, patched so `airflow-stack deploy` can be tested without AWS or Docker.

    $AIRFLOW_STACK_VENV/bin/python tests/aws_emulator/server.py --port 0 [--host IP]

prints `READY <port>` once it listens on <host>:<port> (default 127.0.0.1), and exits
cleanly on SIGTERM.

The gaps filled here are the ones listed in shared/reference/local-aws.md §1-§4. The core of
it is a small CloudFormation engine (section "Stack operations") that replaces moto's
synchronous, event-less create/update/delete: it runs each stack operation in a thread,
resource by resource in dependency order, records per-resource events, waits for
custom resources, and rolls back on failure. moto's own models still create the resources.

It is as strict as AWS where a deploy or the end-to-end run depends on it:
- IAM (authz.py, iam_eval.py): requests signed with an access key registered through
  `POST /_emulator/identities` are authorized like AWS does it, and every decision is
  listed at `GET /_emulator/calls`; the Lambdas it runs get such an identity for their
  role (moto_state.py).
- CodeBuild (codebuild.py): builds run for a while, phase by phase, as their service
  role allows; they log to CloudWatch Logs, push their image to ECR, and end as a test
  decides (POST /_emulator/codebuild-next-build).
- Lambda (run_lambda): a function's bootstrap runs as its role against a one-event
  Runtime API; its output reaches its log group while it runs, each line stamped when it
  was written, between Lambda's START and END/REPORT lines; a failed asynchronous
  invocation is retried as Lambda does (the waits: AIRFLOW_STACK_EMULATOR_LAMBDA_RETRY_DELAYS,
  default "60,120" seconds; none with MaximumRetryAttempts 0). FilterLogEvents interleaves
  the streams and pages as AWS does (log_group_filter_log_events). A function may invoke
  itself asynchronously: the new invocation runs at once, beside the first; but, as on
  AWS, the 17th invocation of a function in one chain of requests (carried by the trace
  header its SDK sends back) is stopped unless its RecursiveLoop is Allow (chain_trace).
- Lambda in a VPC (function_host): a function with VpcConfig whose lab host the e2e
  harness registered (POST /_emulator/function-hosts) runs inside that host's network
  namespace, behind its security groups, its Runtime API on its own loopback, AWS at the
  address the host reaches the emulator by. Without a registration a VPC function still
  runs in the emulator's own namespace, outside any VPC (more permissive than AWS: the
  emulator warns once per function); a function outside a VPC always runs there (on AWS
  it reaches the internet too).
- Lambda's deadline: AIRFLOW_STACK_EMULATOR_LAMBDA_TIMEOUT_CAP_S=N caps every function's
  effective timeout at N seconds (unset: none), so a function with Timeout 900 runs
  N-second invocations in a test: its Runtime API deadline (Lambda-Runtime-Deadline-Ms)
  is the capped one, and it is stopped there with Lambda's timeout error and log line
  ("Task timed out after N.00 seconds"). GetFunctionConfiguration still says 900.
- DynamoDB streams to Lambda (stream_mappings.py): event source mappings, from the API or
  AWS::Lambda::EventSourceMapping, read a table's stream as Lambda does (filters, batches,
  retries, bisection, partial batch responses, the OnFailure SQS destination, the
  execution role's permissions); polled every AIRFLOW_STACK_EMULATOR_STREAM_POLL_S
  seconds (default 0.25, AWS's rate).
- One-off ECS tasks (tasks.py): network paths, the task execution role, the image's
  database check and the schema model decide how a RunTask task ends; its output goes to
  its awslogs stream.
- CloudFormation order: custom resources run as early as their dependencies allow, so a
  missing DependsOn shows up as the race it is on AWS.
"""

import argparse
import copy
import errno
import hashlib
import io
import ipaddress
import json
import logging
import math
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import acm_certificates  # noqa: E402
import authz  # noqa: E402  (the emulator's own modules, next to this file)
import codebuild  # noqa: E402
import ecs_service  # noqa: E402
import ecs_exec  # noqa: E402,F401  (ECS Exec on service tasks; patches on import)
import iam_eval  # noqa: E402
import moto_state  # noqa: E402
import netns_bind  # noqa: E402
import rds_state  # noqa: E402
import stream_mappings  # noqa: E402
import tasks  # noqa: E402

from botocore import xform_name
from moto.awslambda import models as lambda_models
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.utils import get_backend as lambda_backend
from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.cloudformation import responses as cfn_responses
from moto.cloudformation import utils as cfn_utils
from moto.cloudformation.custom_model import CustomModel
from moto.cloudformation.exceptions import ValidationError
from moto.core.common_models import CloudFormationModel
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.ec2.models import ec2_backends
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.ecs.models import ecs_backends
from moto.logs.models import logs_backends
from moto.s3.models import s3_backends
from moto.secretsmanager.models import secretsmanager_backends
from werkzeug.serving import make_server

ENDPOINT = "http://127.0.0.1:5000"  # set in main(): the address clients (and Lambdas) reach
REGISTRY = authz.Registry()  # identities (by access key id) and their decisions
LIVE_PROCESSES: set[subprocess.Popen] = set()  # Lambda processes, killed on exit
RESPONSE_GRACE_S = 2.0  # how long to wait for a custom-resource PUT after the Lambda returned

log = logging.getLogger("aws_emulator")


# --------------------------------------------------------------------------------------
# Lambda: run ./bootstrap from the function's zip against a one-event Runtime API
# --------------------------------------------------------------------------------------


# AIRFLOW_STACK_EMULATOR_LAMBDA_TIMEOUT_CAP_S: every function's effective timeout is at most
# this many seconds (None: the function's own Timeout, as on AWS); main() reads it.
TIMEOUT_CAP_ENV = "AIRFLOW_STACK_EMULATOR_LAMBDA_TIMEOUT_CAP_S"
TIMEOUT_CAP: list[float | None] = [None]


def timeout_cap_from(value: str | None) -> float | None:
    """TIMEOUT_CAP_ENV's value: a positive number of seconds, or None when unset/empty.
    Raises ValueError otherwise."""
    if not (value or "").strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{TIMEOUT_CAP_ENV}={value!r}: want a positive number of seconds, "
                         "the longest any function may run (unset: each function's Timeout)")
    return seconds


def effective_timeout(fn) -> float:
    """The function's Timeout (seconds; moto's default 3), at most TIMEOUT_CAP."""
    configured = float(fn.timeout or 3)
    return min(configured, TIMEOUT_CAP[0]) if TIMEOUT_CAP[0] else configured


# Lambda's recursive loop detection (https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html):
# "Lambda also detects loops comprised only of Lambda functions, which may invoke each other
# synchronously or asynchronously"; "If your function is invoked approximately 16 times in
# the same chain of requests, then Lambda automatically stops the next function invocation
# in that request chain", unless the function's recursion config is Allow
# (PutFunctionRecursionConfig, or RecursiveLoop on AWS::Lambda::Function). The chain is
# carried by the X-Ray trace header: Lambda hands it to the function
# (Lambda-Runtime-Trace-Id), the runtime sets _X_AMZN_TRACE_ID from it (lambda_runtime 1.5
# does), and the SDK's recursion detection sends it back as X-Amzn-Trace-Id on the
# function's own calls (aws-runtime's RecursionDetectionInterceptor; botocore too). The
# emulator's Lineage field is its own (AWS's encoding is not documented): entries
# "<8 hex of the function ARN>:<invocations in this chain>" joined by "|".
RECURSION_LIMIT = 16
RECURSION_MESSAGE = ("Lambda has detected your function being invoked in a recursive loop "
                     "with other AWS resources and stopped your function's invocation.")


def _lineage_key(fn) -> str:
    return hashlib.sha256(fn.function_arn.encode()).hexdigest()[:8]


def chain_trace(fn, incoming: str | None) -> tuple[str, int]:
    """The trace header of a new invocation of `fn` caused by a request carrying
    `incoming` (its X-Amzn-Trace-Id, None for a request from outside a function), and how
    many times `fn` has now been invoked in that chain (this one included)."""
    fields = dict(part.split("=", 1) for part in (incoming or "").split(";")
                  if "=" in part)
    lineage = {}
    for entry in fields.get("Lineage", "").split("|"):
        key, _, count = entry.partition(":")
        if key and count.isdigit():
            lineage[key] = int(count)
    key = _lineage_key(fn)
    lineage[key] = lineage.get(key, 0) + 1
    root = fields.get("Root") or f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    trace = (f"Root={root};Parent={secrets.token_hex(8)};Sampled=0;Lineage="
             + "|".join(f"{k}:{v}" for k, v in lineage.items()))
    return trace, lineage[key]


def recursion_stopped(fn, count: int) -> bool:
    return count > RECURSION_LIMIT and getattr(fn, "recursive_loop", "Terminate") != "Allow"


class _Invocation:
    def __init__(self, fn, event: bytes, request_id: str | None = None,
                 logs: "LambdaLogs | None" = None, trace: str | None = None):
        self.fn, self.event = fn, event
        self.request_id = request_id or str(uuid.uuid4())
        self.trace = trace or chain_trace(fn, None)[0]
        self.created = time.time()
        self.timeout = effective_timeout(fn)
        self.deadline = self.created + self.timeout  # from START once it starts
        self.delivered = False
        self.started: float | None = None  # when the runtime took the event (START)
        self.ended: float | None = None
        self.done = threading.Event()
        self.reaped = threading.Event()  # the bootstrap's process group is killed
        self.payload: bytes = b""
        self.error = False
        self.timed_out = False
        self.logs = logs or LambdaLogs(fn, None)

    def start(self) -> None:
        """The runtime took the event: Lambda's START line (once). The function's Timeout
        counts from here, the invoke phase (the init before it has a limit of its own)."""
        if self.started is None:
            self.started = time.time()
            self.deadline = self.started + self.timeout
            self.logs.write(f"START RequestId: {self.request_id} Version: $LATEST",
                            self.started)

    def finish(self, payload: bytes, error: bool, timed_out: bool = False) -> None:
        if not self.done.is_set():
            self.ended = time.time()
            self.payload, self.error, self.timed_out = payload, error, timed_out
            self.done.set()


class _RuntimeApi(BaseHTTPRequestHandler):
    """The Lambda Runtime API, reduced to one invocation (server.invocation)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _reply(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        inv: _Invocation = self.server.invocation
        if self.path != "/2018-06-01/runtime/invocation/next":
            return self._reply(404, b'{"errorMessage":"unknown path"}')
        if inv.delivered:
            # One event only. Lambda freezes a runtime that asks for its next event and
            # never answers; here it waits to be killed once the invocation is over. An
            # answer (even after `done`) would reach a runtime still alive for a moment:
            # lambda_runtime panics on a reply without Lambda-Runtime-Aws-Request-Id, a
            # panic in the function's log that AWS never causes (seen in CI's log).
            inv.reaped.wait(inv.deadline - time.time() + 5)
            return self._reply(410, b"{}")
        inv.delivered = True
        inv.start()
        self._reply(200, inv.event, {
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(int(inv.deadline * 1000)),
            "Lambda-Runtime-Invoked-Function-Arn": inv.fn.function_arn,
            "Lambda-Runtime-Trace-Id": inv.trace,
        })

    def do_POST(self):
        inv: _Invocation = self.server.invocation
        body = self._body()
        if self.path == f"/2018-06-01/runtime/invocation/{inv.request_id}/response":
            error = False
        elif self.path in (f"/2018-06-01/runtime/invocation/{inv.request_id}/error",
                           "/2018-06-01/runtime/init/error"):
            error = True
        else:
            return self._reply(404, b'{"errorMessage":"unknown path or request id"}')
        self._reply(202, b'{"status":"OK"}')  # answer before finish(): the runtime gets killed
        inv.finish(body, error)


class _RuntimeServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the runtime is killed mid-connection on purpose

    @classmethod
    def on(cls, sock) -> "_RuntimeServer":
        """The Runtime API on a socket already listening, e.g. on 127.0.0.1 inside a VPC
        function's network namespace (netns_bind.listen_in)."""
        return netns_bind.serve_on(cls, sock, _RuntimeApi)


def _unzip(code: bytes, workdir: str) -> None:
    """Extract keeping the Unix modes; like Lambda, a non-executable bootstrap will fail."""
    with zipfile.ZipFile(io.BytesIO(code)) as archive:
        for info in archive.infolist():
            path = archive.extract(info, workdir)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(path, mode)


# Lambda's instruction sets by the ELF header's e_machine of a binary built for them:
# EM_X86_64 = 62, EM_AARCH64 = 183 (https://www.sco.com/developers/gabi/latest/ch4.eheader.html).
ELF_MACHINES = {62: "x86_64", 183: "arm64"}
HOST_ARCHITECTURE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64",
                     "arm64": "arm64"}.get(platform.machine().lower(), platform.machine())
# A binary of the other architecture runs under qemu-user, its dynamic loader and glibc
# from the cross sysroot (Debian: qemu-user-static or qemu-user; libc6-arm64-cross or
# libc6-amd64-cross; tests/run-all.sh installs them).
QEMU = {"arm64": (("qemu-aarch64-static", "qemu-aarch64"), "/usr/aarch64-linux-gnu"),
        "x86_64": (("qemu-x86_64-static", "qemu-x86_64"), "/usr/x86_64-linux-gnu")}


class EntrypointError(Exception):
    """The bootstrap cannot start; the message is Lambda's own for that case."""


def elf_architecture(path: str) -> str | None:
    """The instruction set of an ELF executable ("x86_64", "arm64", or "machine <n>"),
    None when the file is not ELF (a script: Lambda runs it with the sandbox's own
    interpreter, whatever the architecture)."""
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return ELF_MACHINES.get(machine, f"machine {machine}")


def function_architecture(fn) -> str:
    """The function's Architectures (one value; moto's default x86_64, as AWS's)."""
    return (getattr(fn, "architectures", None) or ["x86_64"])[0]


def bootstrap_command(fn, bootstrap: str, request_id: str) -> list[str]:
    """How to start ./bootstrap the way Lambda would on the function's architecture.

    Lambda execs /var/task/bootstrap on a machine of the function's Architectures; a
    binary built for the other one fails there with Runtime.InvalidEntrypoint, "Error:
    fork/exec /var/task/bootstrap: exec format error" (the message AWS returns, e.g.
    https://github.com/awsdocs/aws-lambda-developer-guide/issues/460). So the ELF header
    decides, not this host's kernel (which might run either through binfmt_misc). A
    binary of the function's architecture that is not this host's runs under qemu-user.
    """
    wanted = function_architecture(fn)
    if not os.path.exists(bootstrap):
        return ["./bootstrap"]  # Popen fails: "no such file or directory", as on AWS
    built_for = elf_architecture(bootstrap)
    if built_for is None or built_for == wanted == HOST_ARCHITECTURE:
        return ["./bootstrap"]
    if built_for != wanted:
        log.warning("%s: bootstrap is built for %s, the function runs on %s",
                    fn.function_name, built_for, wanted)
        raise EntrypointError(f"RequestId: {request_id} Error: fork/exec "
                              "/var/task/bootstrap: exec format error")
    names, sysroot = QEMU.get(wanted, ((), ""))
    qemu = next(filter(None, (shutil.which(n) for n in names)), None)
    if qemu is None or not os.path.isdir(sysroot):
        raise RuntimeError(f"{fn.function_name} runs on {wanted} and this host is "
                           f"{HOST_ARCHITECTURE}: the emulator needs {' or '.join(names)} "
                           f"and the {wanted} glibc in {sysroot} (Debian: qemu-user-static, "
                           f"libc6-{'arm64' if wanted == 'arm64' else 'amd64'}-cross)")
    return [qemu, "-L", sysroot, "./bootstrap"]


# --------------------------------------------------------------------------------------
# Lambda in a VPC: the lab host its invocations run in (POST /_emulator/function-hosts)
# --------------------------------------------------------------------------------------

# On AWS a function with VpcConfig runs with an ENI in its subnets, behind its security
# groups: it reaches what they and the routes allow, and nothing else (no internet without
# a NAT); it reaches its Runtime API on its own loopback. The e2e harness models a VPC with
# lab hosts (tests/e2e/harness/netlab.py: a network namespace behind nftables rules) and
# registers, per VPC function, the host its invocations run in:
#   netns        the host's network namespace (a name under /run/netns): the Runtime API
#                listens on 127.0.0.1 there (netns_bind.listen_in), the function's own
#                loopback;
#   argv_prefix  the argv that enters the host (netlab's Host.enter_argv([])), put before
#                the bootstrap's command (the qemu-user one too); each step execs the
#                next, so the pid the emulator waits on, samples and kills (with its
#                process group) at the timeout is the bootstrap's. Registration runs it
#                once (probe_function_host) and refuses a prefix that forks or does not
#                land in `netns`;
#   endpoint     the emulator as that host reaches it: the function's AWS_ENDPOINT_URL
#                (the emulator's own ENDPOINT is an address of its own namespace).
# A VPC function without a registration runs in the emulator's namespace, as every
# function did before: outside any VPC, more permissive than AWS. The emulator warns once
# per function and lists it as "unhosted" (GET /_emulator/function-hosts). A function
# without VpcConfig gets no host: outside a VPC, Lambda reaches the internet from AWS's
# own network, which the emulator's host stands in for.
FUNCTION_HOSTS: dict[str, dict] = {}  # function ARN -> its registration
UNHOSTED: list[str] = []  # VPC functions run without a host, by ARN (each warned once)
FUNCTION_HOSTS_LOCK = threading.Lock()
HOST_PROBE_TIMEOUT_S = 10.0
_NETNS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")  # no "/", no "." or ".."


def in_vpc(fn) -> bool:
    """The function is attached to a VPC: its VpcConfig lists subnets (a VpcConfig with
    none detaches the function on AWS)."""
    return bool((getattr(fn, "_vpc_config", None) or {}).get("SubnetIds"))


def function_host(fn) -> dict | None:
    """The registered host this invocation of `fn` runs in, or None: the emulator's own
    namespace. A registration of a function whose VpcConfig was removed since is not
    used: it runs outside a VPC now, as on AWS."""
    if not in_vpc(fn):
        return None
    with FUNCTION_HOSTS_LOCK:
        host = FUNCTION_HOSTS.get(fn.function_arn)
        if host is None and fn.function_arn not in UNHOSTED:
            UNHOSTED.append(fn.function_arn)
            log.warning("%s is in a VPC but no lab host is registered for it (POST "
                        "/_emulator/function-hosts): it runs in the emulator's own network "
                        "namespace, outside any VPC and its security groups - more "
                        "permissive than AWS", fn.function_name)
    return host


def probe_function_host(netns: str, argv_prefix: list[str]) -> None:
    """Runs `argv_prefix` + a shell that prints its pid and execs `readlink
    /proc/self/ns/net`; raises ValueError unless it exits 0 and that pid is the one
    started (no step forked: the bootstrap's pid will be the one the emulator kills) in
    `netns`."""
    try:
        want = f"net:[{os.stat(f'/run/netns/{netns}').st_ino}]"
    except OSError as e:
        raise ValueError(f"no network namespace {netns!r} (/run/netns/{netns}: "
                         f"{e.strerror})") from None
    shell, readlink = shutil.which("sh") or "/bin/sh", shutil.which("readlink") or "readlink"
    try:
        proc = subprocess.Popen(
            [*argv_prefix, shell, "-c", f'echo "$$"; exec {readlink} /proc/self/ns/net'],
            cwd="/", env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
    except OSError as e:
        raise ValueError(f"argv_prefix cannot start: {e}") from None
    try:
        out, _ = proc.communicate(timeout=HOST_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise ValueError(f"argv_prefix + a shell did not finish within "
                         f"{HOST_PROBE_TIMEOUT_S:.0f} s") from None
    text = out.decode(errors="replace").strip()
    lines = text.splitlines()
    if proc.returncode != 0 or len(lines) < 2:
        raise ValueError(f"argv_prefix + a shell failed (exit {proc.returncode}): {text}")
    if lines[-2].strip() != str(proc.pid):
        raise ValueError(f"argv_prefix forks: the command after it ran as pid "
                         f"{lines[-2].strip()}, not as the started pid {proc.pid}; every "
                         "step must exec the next, or the emulator would wait on and kill "
                         "the wrong process")
    if lines[-1].strip() != want:
        raise ValueError(f"argv_prefix does not enter {netns}: the command after it ran in "
                         f"{lines[-1].strip()}, {netns} is {want}")


def _endpoint_for_host(endpoint, netns: str) -> str:
    """The registration's endpoint: http(s)://<address>:<port> that is not loopback (the
    loopback inside `netns` is the function's own, where the emulator does not listen)."""
    if not isinstance(endpoint, str):
        raise ValueError('"endpoint" must be "http://<address the host reaches the emulator '
                         'at>:<port>" (the e2e harness\'s stack.aws.endpoint)')
    parts = urlsplit(endpoint)
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None
            or parts.path not in ("", "/") or parts.query or parts.fragment):
        raise ValueError(f'"endpoint" {endpoint!r}: want http://<address>:<port>')
    try:
        loopback = ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        loopback = parts.hostname == "localhost"
    if loopback:
        raise ValueError(f'"endpoint" {endpoint!r} is loopback: inside {netns} that is the '
                         "function's own, where the emulator does not listen")
    return endpoint.rstrip("/")


def register_function_host(body) -> dict:
    """POST /_emulator/function-hosts: {"function", "netns", "argv_prefix", "endpoint",
    optional "region"}. Raises ValueError (400) or LookupError (404, no such function)."""
    if not isinstance(body, dict):
        raise ValueError('the body must be {"function", "netns", "argv_prefix", "endpoint"}')
    name, netns, prefix = body.get("function"), body.get("netns"), body.get("argv_prefix")
    region = body.get("region") or authz.DEFAULT_REGION
    if not isinstance(name, str) or not name:
        raise ValueError('"function" must be the function\'s name')
    if not isinstance(netns, str) or not _NETNS_NAME.fullmatch(netns):
        raise ValueError(f'"netns" {netns!r} must be a name under /run/netns')
    if (not isinstance(prefix, list) or not prefix
            or not all(isinstance(arg, str) and arg for arg in prefix)):
        raise ValueError('"argv_prefix" must be a non-empty list of strings (the e2e '
                         "harness's Host.enter_argv([]))")
    endpoint = _endpoint_for_host(body.get("endpoint"), netns)
    try:
        fn = lambda_backend(authz.DEFAULT_ACCOUNT, region).get_function(name)
    except Exception:
        raise LookupError(f"Function not found: {name} (region {region})") from None
    if not in_vpc(fn):
        raise ValueError(f"{fn.function_name} has no VpcConfig with subnets: only a function "
                         "in a VPC runs in a lab host; a function outside a VPC reaches the "
                         "internet from AWS's network, the emulator's own host here")
    probe_function_host(netns, prefix)
    entry = {"function": fn.function_name, "function_arn": fn.function_arn, "region": region,
             "netns": netns, "argv_prefix": list(prefix), "endpoint": endpoint}
    with FUNCTION_HOSTS_LOCK:
        FUNCTION_HOSTS[fn.function_arn] = entry
        if fn.function_arn in UNHOSTED:
            UNHOSTED.remove(fn.function_arn)
    log.info("%s runs in network namespace %s, AWS at %s", fn.function_name, netns, endpoint)
    return entry


def _function_hosts_api(path: str, method: str, environ):
    """The /_emulator/function-hosts endpoints (emulator_api): (status, body) or None."""
    if path == "/_emulator/function-hosts" and method == "POST":
        try:
            return "200 OK", register_function_host(json.loads(_read_body(environ) or b"null"))
        except LookupError as e:
            return "404 Not Found", {"error": str(e)}
    if path == "/_emulator/function-hosts" and method == "GET":
        with FUNCTION_HOSTS_LOCK:
            return "200 OK", {"function_hosts": list(FUNCTION_HOSTS.values()),
                              "unhosted": [arn.rsplit(":", 1)[-1] for arn in UNHOSTED]}
    prefix = "/_emulator/function-hosts/"
    if path.startswith(prefix) and len(path) > len(prefix) and method == "DELETE":
        wanted = path[len(prefix):]
        region = (parse_qs(environ.get("QUERY_STRING", "")).get("region") or [None])[0]
        with FUNCTION_HOSTS_LOCK:
            arns = [arn for arn, e in FUNCTION_HOSTS.items()
                    if wanted in (e["function"], arn) and region in (None, e["region"])]
            for arn in arns:
                del FUNCTION_HOSTS[arn]
        if not arns:
            return "404 Not Found", {"error": f"no host is registered for {wanted}"}
        log.info("%s runs in the emulator's own namespace again", wanted)
        return "200 OK", {"forgotten": arns}
    return None


def reset_function_hosts() -> None:
    with FUNCTION_HOSTS_LOCK:
        FUNCTION_HOSTS.clear()
        UNHOSTED.clear()


def _check_entrypoint(path: str) -> None:
    """What exec would say about ./bootstrap, for a command that reaches it only through
    argv_prefix (Popen itself would fail here without one: Runtime.InvalidEntrypoint)."""
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if not os.access(path, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)


def run_lambda(fn, event: bytes, request_id: str | None = None,
               trace: str | None = None) -> tuple[bytes, bool]:
    """Gap §3: moto runs Lambda code only inside Docker, which is not available here.

    Unzips the function's code (moto keeps it in fn.code_bytes, fetched from S3 or ZipFile),
    starts ./bootstrap with the AWS_LAMBDA_* environment and AWS_ENDPOINT_URL pointing at this
    server, serves it one event, and kills it once it answered or at the function's Timeout.
    Returns (payload, is_error). `request_id` is the invocation's (a retry of an
    asynchronous invocation keeps it); a new one when None. `trace`: its X-Ray trace
    header (chain_trace), a new chain when None.

    The function runs as its role, as on AWS: a fresh access key is registered as an
    identity with the role's policies (lambda_identity), so every call it makes is
    authorized against them. Its output goes to its log group only if the role may write
    there (open_lambda_logs), as Lambda's own log delivery uses the role too; it is
    delivered while the function runs, line by line with the time the runtime wrote it,
    between Lambda's START and END/REPORT lines (LambdaLogs, lambda_report).

    Where it runs: a function in a VPC with a registered host (function_host, POST
    /_emulator/function-hosts) runs inside that lab host's network namespace, entered
    through the registration's argv_prefix, with its Runtime API on 127.0.0.1 there and
    the registration's endpoint as AWS_ENDPOINT_URL; it reaches only what the host's
    security groups and routes allow, as with its ENI on AWS. Every other function runs in
    the emulator's own namespace: right for a function outside a VPC; for a VPC function
    without a host it is a gap, more permissive than AWS (warned once per function).
    The custom-resource ResponseURL stays on the emulator's own ENDPOINT
    (call_custom_resource), which a function in a host may not reach.
    """
    stream = time.strftime("%Y/%m/%d/") + f"[$LATEST]{secrets.token_hex(16)}"
    try:
        identity = lambda_identity(fn)
    except (moto_state.RoleError, ValueError) as e:
        message = f"the emulator cannot run {fn.function_name} as its role: {e}"
        log.error("%s", message)
        return json.dumps({"errorType": "Emulator.RoleError", "errorMessage": message}
                          ).encode(), True
    host = function_host(fn)
    try:  # a VPC function's Runtime API is on its own loopback, in its host's namespace
        api = (_RuntimeServer.on(netns_bind.listen_in(host["netns"])) if host
               else _RuntimeServer(("127.0.0.1", 0), _RuntimeApi))
    except OSError as e:  # the host is gone (its lab was torn down): never run it outside
        message = (f"the emulator cannot run {fn.function_name} in its host's network "
                   f"namespace {host['netns']}: {e}")
        log.error("%s", message)
        return json.dumps({"errorType": "Emulator.FunctionHostError",
                           "errorMessage": message}).encode(), True
    inv = _Invocation(fn, event, request_id,
                      LambdaLogs(fn, open_lambda_logs(fn, identity, stream)), trace)
    workdir = tempfile.mkdtemp(prefix=f"lambda-{fn.function_name}-")
    api.invocation = inv
    threading.Thread(target=api.serve_forever, daemon=True).start()
    error_lines: list[str] = []  # what Lambda itself logs about a failed invocation
    peak_kb = 0
    try:
        _unzip(fn.code_bytes, workdir)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LAMBDA_TASK_ROOT": workdir,
            "_HANDLER": fn.handler or "",
            **{k: str(v) for k, v in (fn.environment_vars or {}).items()},
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_port}",
            "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": lambda_log_group(fn),
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_ENDPOINT_URL": host["endpoint"] if host else ENDPOINT,
            "AWS_ACCESS_KEY_ID": identity.access_key_id,
            "AWS_SECRET_ACCESS_KEY": "emulated-secret-any-value-signs",
            "AWS_REGION": fn.region,
            "AWS_DEFAULT_REGION": fn.region,
        }
        try:
            command = bootstrap_command(fn, os.path.join(workdir, "bootstrap"), inv.request_id)
            if host:  # enter the host first; each step execs the next (same pid)
                _check_entrypoint(os.path.join(workdir, "bootstrap"))
                command = [*host["argv_prefix"], *command]
            proc = subprocess.Popen(command, cwd=workdir, env=env, start_new_session=True,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
        except (OSError, EntrypointError) as e:
            msg = (str(e) if isinstance(e, EntrypointError)
                   else f"Error: fork/exec /var/task/bootstrap: {e.strerror}")
            error_lines.extend([msg, "Runtime.InvalidEntrypoint"])
            inv.finish(json.dumps({"errorType": "Runtime.InvalidEntrypoint",
                                   "errorMessage": msg}).encode(), error=True)
            return inv.payload, inv.error
        except RuntimeError as e:  # the emulator cannot run this architecture: say so loudly
            log.error("%s", e)
            error_lines.append(str(e))
            inv.finish(json.dumps({"errorType": "Emulator.MissingQemu",
                                   "errorMessage": str(e)}).encode(), error=True)
            return inv.payload, inv.error
        LIVE_PROCESSES.add(proc)

        def pump():
            for line in proc.stdout:
                # Stamped when the runtime wrote it (its stdout is a pipe read as it comes).
                text = line.decode(errors="replace").rstrip("\n")
                inv.logs.write(text)
                log.info("[lambda %s] %s", fn.function_name, text)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        next_sample = 0.0
        while not inv.done.wait(0.02):
            if time.time() >= next_sample:
                peak_kb, next_sample = max(peak_kb, _peak_rss_kb(proc.pid)), time.time() + 0.25
            if time.time() > inv.deadline:
                inv.finish(json.dumps({"errorType": "Sandbox.Timedout", "errorMessage":
                           f"Task timed out after {inv.timeout:.2f} seconds"}).encode(), True,
                           timed_out=True)
            elif proc.poll() is not None and not inv.done.wait(0.2):
                message = f"Runtime exited with error: exit status {proc.returncode}"
                error_lines.extend([f"RequestId: {inv.request_id} Error: {message}",
                                    "Runtime.ExitError"])
                inv.finish(json.dumps({"errorType": "Runtime.ExitError",
                                       "errorMessage": message}).encode(), True)
        peak_kb = max(peak_kb, _peak_rss_kb(proc.pid))
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        LIVE_PROCESSES.discard(proc)
        reader.join(1)
        return inv.payload, inv.error
    finally:
        inv.done.set()
        inv.reaped.set()
        api.shutdown()
        api.server_close()
        shutil.rmtree(workdir, ignore_errors=True)
        lambda_report(inv, error_lines, peak_kb)


def _peak_rss_kb(pid: int) -> int:
    """The process's peak resident set (VmHWM, kB); 0 once it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def lambda_report(inv: _Invocation, error_lines: list[str], peak_kb: int) -> None:
    """The lines Lambda writes after an invocation, in its plain-text format:
    - after a timeout, "<UTC time, ms> <request id> Task timed out after N.NN seconds"
      (the message as AWS's error responses have it; the whole line as real logs show it,
      e.g. https://github.com/apex/up/issues/663 - the docs show no such line);
    - the runtime's error (exit status, entrypoint), as the emulator reports it;
    - `END RequestId: <id>` and the tab-separated REPORT line: Duration (the invoke phase,
      ms, 2 decimals), Billed Duration (ms, rounded up; with the init, which custom
      runtimes are billed for:
      https://aws.amazon.com/blogs/compute/aws-lambda-standardizes-billing-for-init-phase/),
      Memory Size, Max Memory Used (MB: the bootstrap's peak RSS, VmHWM; at least 1) and
      Init Duration on a cold start, which every emulated invocation is. The fields are
      those of the runtimes' logging pages, e.g. "REPORT line data fields" in
      https://docs.aws.amazon.com/lambda/latest/dg/dotnet-logging.html, and the START/END
      lines those of https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html.
    A START line is written when the runtime takes the event (_Invocation.start); a run
    whose runtime never did still gets one here, as Lambda logs START before an init
    failure's error. Newer Lambda REPORT lines may end with "Status: timeout" after a
    timeout; the emulator leaves it out (not in the pages above)."""
    logs = inv.logs
    try:
        ended = inv.ended or time.time()
        if inv.started is None:
            inv.start()
            init_ms = None
        else:
            init_ms = (inv.started - inv.created) * 1000
        duration_ms = max((ended - inv.started) * 1000, 0.01)
        if inv.timed_out:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ended)) + \
                f".{int(ended * 1000) % 1000:03d}Z"
            logs.write(f"{stamp} {inv.request_id} Task timed out after "
                       f"{duration_ms / 1000:.2f} seconds", ended)
        for line in error_lines:
            logs.write(line, ended)
        logs.write(f"END RequestId: {inv.request_id}", ended)
        report = (f"REPORT RequestId: {inv.request_id}\tDuration: {duration_ms:.2f} ms\t"
                  f"Billed Duration: {math.ceil(duration_ms + (init_ms or 0))} ms\t"
                  f"Memory Size: {inv.fn.memory_size} MB\t"
                  f"Max Memory Used: {max(math.ceil(peak_kb / 1024), 1)} MB")
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
        logs.write(report, ended)
    finally:
        logs.close()


def lambda_function_create(cls, resource_name, cloudformation_json, account_id, region_name,
                           **kwargs):
    """Gap: moto's CloudFormation model of AWS::Lambda::Function drops Architectures, so
    every function was x86_64; run_lambda runs a bootstrap by its function's architecture."""
    fn = ORIGINAL["lambda_create"].__func__(cls, resource_name, cloudformation_json,
                                            account_id, region_name, **kwargs)
    props = cloudformation_json.get("Properties") or {}
    fn.architectures = props.get("Architectures") or ["x86_64"]
    fn.recursive_loop = props.get("RecursiveLoop") or "Terminate"  # moto drops it too
    return fn


def lambda_function_update(cls, original_resource, new_resource_name, cloudformation_json,
                           account_id, region_name):
    """Same gap on update: a changed Architectures takes effect (left out: x86_64)."""
    fn = ORIGINAL["lambda_update"].__func__(cls, original_resource, new_resource_name,
                                            cloudformation_json, account_id, region_name)
    props = cloudformation_json.get("Properties") or {}
    fn.architectures = props.get("Architectures") or ["x86_64"]
    fn.recursive_loop = props.get("RecursiveLoop") or "Terminate"  # moto drops it too
    return fn


def lambda_update_function_code(self, updated_spec):
    """Gap: moto's UpdateFunctionCode ignored Architectures, which AWS takes there
    (https://docs.aws.amazon.com/lambda/latest/api/API_UpdateFunctionCode.html)."""
    result = ORIGINAL["lambda_update_code"](self, updated_spec)
    if updated_spec.get("Architectures"):
        self.architectures = updated_spec["Architectures"]
        result = self.get_configuration()
    return result


def put_event_invoke_config(self, function_name, config):
    """Gap: moto's PutFunctionEventInvokeConfig appended a configuration and every reader
    took the first, so a second Put changed nothing. AWS: "If a configuration already
    exists for a function, version, or alias, this operation overwrites it. If you exclude
    any settings, they are removed"
    (https://docs.aws.amazon.com/lambda/latest/api/API_PutFunctionEventInvokeConfig.html).
    One configuration per function: the Qualifier is not kept apart (moto's), which is
    the unqualified invocations' ($LATEST) the emulator runs."""
    self.get_function(function_name).event_invoke_config = []
    return ORIGINAL["put_event_invoke_config"](self, function_name, config)


def update_event_invoke_config(self, function_name, config):
    """Gap: moto's UpdateFunctionEventInvokeConfig was a Put (settings left out were
    removed); AWS's changes only the settings given, "To set one option without affecting
    existing settings for other options, use UpdateFunctionEventInvokeConfig" (same page)."""
    current = event_invoke_config(self.get_function(function_name))
    return put_event_invoke_config(self, function_name, {**current, **config})


def _event_invoke_config_target(props: dict, account_id: str, region: str):
    """AWS::Lambda::EventInvokeConfig's function (FunctionName: a name or ARN), or None."""
    try:
        return lambda_backend(account_id, region).get_function(props.get("FunctionName", ""))
    except Exception:
        return None


def apply_event_invoke_config(props: dict, account_id: str, region: str,
                              remove: bool = False) -> None:
    """Gap §1 for AWS::Lambda::EventInvokeConfig (a stub, moto has no model): its settings
    now apply to the function's asynchronous invocations (_run_async), and go with the
    resource. The properties are the API's
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-lambda-eventinvokeconfig.html)."""
    fn = _event_invoke_config_target(props, account_id, region)
    if fn is None:
        raise ResourceFailed(f"Function not found: {props.get('FunctionName')!r}")
    if remove:
        fn.event_invoke_config = []
        return
    config = {key: props[key] for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds",
                                          "DestinationConfig") if key in props}
    for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
        if key in config:
            config[key] = int(config[key])
    put_event_invoke_config(lambda_backend(account_id, region), fn.function_name, config)


def lambda_identity(fn) -> authz.Identity:
    """A fresh access key registered as the function's role (moto_state.role_policies:
    its inline policies, customer-managed ones, AWS managed ones the emulator knows).
    Raises RoleError (unknown role or managed policy) or PolicyError."""
    role_name, policies = moto_state.role_policies(fn.account_id, fn.region, fn.role)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    key = "ASIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    return REGISTRY.register({
        "access_key_id": key, "name": fn.function_name,
        "principal": f"arn:aws:sts::{fn.account_id}:assumed-role/{role_name}/"
                     f"{fn.function_name}",
        "policies": policies})


def lambda_log_group(fn) -> str:
    """The function's LoggingConfig.LogGroup (moto ignores LoggingConfig), from its
    template resource or, for a function created through the API, from CreateFunction's
    request (lambda_function_init); else /aws/lambda/<name>."""
    found = moto_state.find_resource(
        fn.account_id, fn.region, "AWS::Lambda::Function",
        lambda obj, props: obj.function_name == fn.function_name)
    group = found and (found[3].get("LoggingConfig") or {}).get("LogGroup")
    return group or getattr(fn, "emu_log_group", None) or fn.logs_group_name


def lambda_function_init(self, account_id, spec, region, version=1):
    """moto's LambdaFunction.__init__, keeping CreateFunction's LoggingConfig.LogGroup
    (the e2e harness creates the stream functions through the API, each writing to the
    log group the template names, which is all its role may write)."""
    ORIGINAL["lambda_init"](self, account_id, spec, region, version)
    self.emu_log_group = (spec.get("LoggingConfig") or {}).get("LogGroup")


def open_lambda_logs(fn, identity, stream: str) -> tuple | None:
    """Lambda writes a function's output with the function's role: if the role may not
    create the stream or put events (or create a missing group), AWS drops the logs, and
    so does the emulator. The decisions are listed under the function's identity. The
    stream is created when the function starts, as on AWS. Returns (group, stream) or None."""
    try:
        account, region = fn.account_id, fn.region
        group = lambda_log_group(fn)
        logs = logs_backends[account][region]
        group_arn = f"arn:aws:logs:{region}:{account}:log-group:{group}"
        stream_arn = f"{group_arn}:log-stream:{stream}"
        needed = [("logs:CreateLogStream", stream_arn), ("logs:PutLogEvents", stream_arn)]
        if group not in logs.groups:
            needed.insert(0, ("logs:CreateLogGroup", f"{group_arn}:*"))
        request_no = REGISTRY.next_request()
        for action, resource in needed:
            decision = iam_eval.evaluate(identity.statements, action, resource, {})
            REGISTRY.record(identity, request_no, "logs", "Lambda log delivery", action,
                            resource, {}, decision.allowed, decision.reason)
            if not decision.allowed:
                log.warning("the logs of %s are dropped, as AWS would: %s", fn.function_name,
                            decision.reason)
                return None
        logs.ensure_log_group(group)
        logs.create_log_stream(group, stream)
        return group, stream
    except Exception as e:  # logs are a convenience; never fail an invocation for them
        log.warning("could not open the Lambda's log stream: %s", e)
        return None


LOG_DELIVERY_S = 0.2  # how often a running function's new lines reach its log stream
LOG_BATCH_EVENTS = 10_000  # PutLogEvents' maximum batch (CloudWatch Logs API reference)


class LambdaLogs:
    """One invocation's log stream, written as Lambda delivers it: each line stamped with
    the time it was written (ms, never before the line above it: a stream's events are
    in order), and delivered in small batches every LOG_DELIVERY_S while the function
    runs, so a reader of the log group sees a long invocation's first lines before it
    ends. Lambda captures the function's output and sends it to CloudWatch Logs
    (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html); that
    page promises no delivery time ("It might take 5 to 10 minutes for logs to show up"),
    in practice lines show within seconds while the function runs. The emulator delivers
    at once: a reader's tolerance of late lines is not exercised here.

    `target` is open_lambda_logs's (group, stream), None when the role may not write
    there: then nothing is delivered. A failed delivery is logged and dropped; it never
    fails the invocation."""

    def __init__(self, fn, target: tuple | None):
        self.fn, self.target = fn, target
        self.lock = threading.Lock()
        self.pending: list[dict] = []
        self.last_ms = 0
        self.closed = threading.Event()
        self.thread = None
        if target is not None:
            self.thread = threading.Thread(target=self._deliver, daemon=True)
            self.thread.start()

    def write(self, message: str, at: float | None = None) -> None:
        if self.target is None:
            return
        ms = int((time.time() if at is None else at) * 1000)
        with self.lock:
            self.last_ms = max(ms, self.last_ms)
            self.pending.append({"timestamp": self.last_ms, "message": message})

    def _deliver(self) -> None:
        while not self.closed.wait(LOG_DELIVERY_S):
            self.flush()

    def flush(self) -> None:
        with self.lock:  # held while putting: batches arrive in order
            events, self.pending = self.pending, []
            for i in range(0, len(events), LOG_BATCH_EVENTS):
                try:
                    logs_backends[self.fn.account_id][self.fn.region].put_log_events(
                        *self.target, events[i:i + LOG_BATCH_EVENTS])
                except Exception as e:  # logs are a convenience; never fail an invocation
                    log.warning("could not deliver the logs of %s: %s",
                                self.fn.function_name, e)

    def close(self) -> None:
        """Deliver what is left (the END and REPORT lines) and stop."""
        self.closed.set()
        if self.thread is not None:
            self.thread.join(5)
            self.flush()


def lambda_invoke(self, body, request_headers, response_headers):
    """Gap §3: lambda.invoke went through Docker. Run the bootstrap instead (see run_lambda).

    InvocationType=Event returns at once (202) and runs the function in a background thread,
    retrying a failed run as Lambda does (_run_async).
    """
    event = body.encode() if isinstance(body, str) else (body or b"{}")
    trace, count = chain_trace(self, (request_headers or {}).get("X-Amzn-Trace-Id"))
    asynchronous = (request_headers or {}).get("X-Amz-Invocation-Type") == "Event"
    if recursion_stopped(self, count):
        log.warning("%s: recursive loop detected (invocation %d of this chain), stopped as "
                    "Lambda does; its RecursiveLoop is not Allow", self.function_name, count)
        RECURSION_STOPS.append({"function": self.function_name, "count": count,
                                "asynchronous": asynchronous})
        if asynchronous:  # accepted, then dropped (no destination is modelled here)
            return ""
        raise LambdaClientError("RecursiveInvocationException", RECURSION_MESSAGE)
    if asynchronous:
        slot = _pending_slot_in(event)
        if slot is not None:
            with PENDING_LOCK:
                slot["carriers"] += 1  # counted before this call returns: see _after_run
        threading.Thread(target=_run_async, args=(self, event, slot, trace),
                         daemon=True).start()
        return ""
    payload, error = run_lambda(self, event, trace=trace)
    if error:
        response_headers["x-amz-function-error"] = "Unhandled"
    return payload


# --------------------------------------------------------------------------------------
# Custom resources: send the request to the Lambda, wait for the PUT to the ResponseURL
# --------------------------------------------------------------------------------------

PENDING: dict[str, dict] = {}  # RequestId -> {"done": Event, "response": dict | None}
RECURSION_STOPS: list[dict] = []  # invocations stopped as a recursive loop (GET /_emulator/...)


class ResourceFailed(Exception):
    """A resource operation failed; the message becomes the event's ResourceStatusReason."""

    def __init__(self, reason: str, physical_id: str | None = None):
        super().__init__(reason)
        self.physical_id = physical_id


def _as_strings(value):
    """CloudFormation passes every scalar of ResourceProperties as a string."""
    if isinstance(value, dict):
        return {k: _as_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_strings(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if value is None or isinstance(value, str) else str(value)


def call_custom_resource(stack, logical_id: str, resource_type: str, request_type: str,
                         props: dict, physical_id: str | None = None,
                         old_props: dict | None = None) -> tuple[str, dict]:
    """Gaps §3: the Lambda ran only in Docker, the ResponseURL named host.docker.internal,
    a FAILED response was ignored and nothing waited for the answer.

    Invokes the ServiceToken's Lambda asynchronously (as CloudFormation does) with a
    ResponseURL on http://127.0.0.1:<port>, then blocks until the response PUT arrives.
    Returns (PhysicalResourceId, Data); raises ResourceFailed for FAILED or no response.
    If the Lambda returns without having PUT a response, and without handing the request to
    another invocation of itself (_after_run), this fails after RESPONSE_GRACE_S instead of
    waiting ServiceTimeout (AWS would wait, up to an hour).
    """
    token = props.get("ServiceToken", "")
    try:
        fn = lambda_backend(stack.account_id, stack.region_name).get_function(token)
    except Exception:
        raise ResourceFailed(f"Invalid service token {token!r}: only Lambda function ARNs "
                             "in this account and region are supported")
    request_id = str(uuid.uuid4())
    event = {
        "RequestType": request_type,
        "ServiceToken": token,
        "ResponseURL": f"{ENDPOINT}/_emulator/cfn-response/{request_id}?X-Amz-Algorithm="
                       "AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEMULATOR%2F20260101%2F"
                       f"{stack.region_name}%2Fs3%2Faws4_request&X-Amz-Expires=7200"
                       "&X-Amz-SignedHeaders=host&X-Amz-Signature=0123456789abcdef",
        "StackId": stack.stack_id,
        "RequestId": request_id,
        "LogicalResourceId": logical_id,
        "ResourceType": resource_type,
        "ResourceProperties": _as_strings(props),
    }
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    if old_props is not None:
        event["OldResourceProperties"] = _as_strings(old_props)
    # carriers: invocations running with this request's event (the first, and any
    # continuation it hands the wait to; see _after_run).
    slot = PENDING[request_id] = {"done": threading.Event(), "response": None,
                                  "carriers": 1, "fn": fn}

    def invoke():
        payload, error = run_lambda(fn, json.dumps(event).encode())
        _after_run(slot, payload, error)

    # The version a migration task's schema is judged by when its image has none (tasks.py).
    if props.get("AirflowVersion") and request_type != "Delete":
        tasks.IN_FLIGHT_VERSION[stack.stack_id] = str(props["AirflowVersion"])
    threading.Thread(target=invoke, daemon=True).start()
    timeout = float(props.get("ServiceTimeout") or 3600)
    try:
        if not slot["done"].wait(timeout):
            raise ResourceFailed("CloudFormation did not receive a response from your Custom "
                                 f"Resource within {timeout:.0f} seconds (ServiceTimeout)")
    finally:
        PENDING.pop(request_id, None)
    response = slot["response"]
    returned_id = response.get("PhysicalResourceId")
    if response.get("Status") != "SUCCESS":
        raise ResourceFailed(response.get("Reason") or "Custom resource reported FAILED "
                             "without a Reason", physical_id=returned_id)
    if not returned_id and request_type != "Delete":
        raise ResourceFailed("Invalid PhysicalResourceId")
    return returned_id or physical_id, response.get("Data") or {}


PENDING_LOCK = threading.Lock()


def _pending_slot_in(event: bytes) -> dict | None:
    """The pending custom-resource request whose ResponseURL an event carries: a Lambda
    that hands a long wait over to a new invocation of itself (lambdas/migration,
    lambdas/image-build) passes the original event on inside its own payload."""
    text = event.decode(errors="replace")
    for request_id, slot in list(PENDING.items()):
        if f"/_emulator/cfn-response/{request_id}" in text:
            return slot
    return None


# Lambda's waits before the retries of a failed asynchronous invocation: "by default
# Lambda attempts to run it two more times, with a one-minute wait between the first two
# attempts, and two minutes between the second and third attempts"
# (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html).
# RETRY_DELAYS_ENV ("1,1": comma-separated seconds) shortens them for tests; main() reads it.
RETRY_DELAYS_ENV = "AIRFLOW_STACK_EMULATOR_LAMBDA_RETRY_DELAYS"
ASYNC_RETRY_DELAYS = [60.0, 120.0]
LAMBDA_EPOCH = [0]  # bumped by /moto-api/reset: a retry queued before a reset is dropped


def retry_delays_from(value: str | None) -> list[float]:
    """RETRY_DELAYS_ENV's value as the two waits; raises ValueError when it is not two
    comma-separated non-negative numbers of seconds. Empty or None: AWS's."""
    if not (value or "").strip():
        return [60.0, 120.0]
    try:
        delays = [float(part) for part in value.split(",")]
    except ValueError:
        delays = []
    if len(delays) != 2 or any(d < 0 or d != d for d in delays):
        raise ValueError(f"{RETRY_DELAYS_ENV}={value!r}: want two comma-separated "
                         "numbers of seconds, the waits before the first and the second "
                         "retry (AWS: 60,120)")
    return delays


def event_invoke_config(fn) -> dict:
    """The function's PutFunctionEventInvokeConfig settings ({} when none)."""
    configs = getattr(fn, "event_invoke_config", None) or []
    return dict(configs[-1].config) if configs else {}


def _run_async(fn, event: bytes, slot: dict | None, trace: str | None = None) -> None:
    """An asynchronous invocation (InvocationType=Event).

    A run that fails (the function's error, a crash, a timeout) is run again as Lambda
    does: after ASYNC_RETRY_DELAYS, at most the event invoke config's MaximumRetryAttempts
    times (default 2, 0: never), not once the event is older than its
    MaximumEventAgeInSeconds (default six hours), each retry a new run of the function's
    current code (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html,
    https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-configuring.html).
    Every attempt has the same request ID in its START line and its context: Lambda's docs
    do not say so in words, but a retry is the same queued event, and the request ID is
    what a function's idempotency keys on across retries (emulator assumption).

    Not retried, unlike on AWS: an invocation carrying a pending custom-resource request
    (`slot`: a Lambda handing a long wait over to a new invocation of itself). The
    emulator fails that resource RESPONSE_GRACE_S after such a run returns without an
    answer (_after_run), which a retry a minute later would not change in time; AWS
    would retry it, as the stack sets no EventInvokeConfig for its custom-resource
    functions (a continuation that fails is run again, twice)."""
    if slot is not None:
        payload, error = run_lambda(fn, event, trace=trace)
        _after_run(slot, payload, error)
        return
    config = event_invoke_config(fn)
    retries = int(config.get("MaximumRetryAttempts", 2))
    max_age = float(config.get("MaximumEventAgeInSeconds", 6 * 3600))
    queued, epoch, request_id = time.time(), LAMBDA_EPOCH[0], str(uuid.uuid4())
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(ASYNC_RETRY_DELAYS[min(attempt, len(ASYNC_RETRY_DELAYS)) - 1])
            if LAMBDA_EPOCH[0] != epoch:
                return  # the emulator was reset meanwhile
            try:  # the function as it is now (deleted: the event is dropped)
                fn = lambda_backend(fn.account_id, fn.region).get_function(fn.function_name)
            except Exception:
                log.info("%s: dropped the retry of %s, the function is gone",
                         fn.function_name, request_id)
                return
            if time.time() - queued > max_age:
                log.info("%s: dropped the retry of %s, older than MaximumEventAgeInSeconds "
                         "%g", fn.function_name, request_id, max_age)
                return
        _, error = run_lambda(fn, event, request_id, trace)
        if not error:
            return
        log.info("%s: asynchronous invocation %s failed (attempt %d of %d)",
                 fn.function_name, request_id, attempt + 1, retries + 1)


def _after_run(slot: dict, payload: bytes, error: bool) -> None:
    """An invocation carrying a custom-resource request returned. AWS waits for the
    response until ServiceTimeout whatever happened; the emulator fails the resource
    after RESPONSE_GRACE_S instead, saying what the function returned (the role error,
    the crash), which is what a person can act on - unless another invocation still
    carries the request (the wait was handed over), which may yet answer."""
    with PENDING_LOCK:
        slot["carriers"] -= 1
    if slot["done"].wait(RESPONSE_GRACE_S):
        return
    with PENDING_LOCK:
        if slot["carriers"] > 0 or slot["done"].is_set():
            return
    fn = slot["fn"]
    detail = ""
    if error:
        try:
            answer = json.loads(payload)
            detail = f": {answer.get('errorType')}: {answer.get('errorMessage')}"
        except ValueError:
            detail = f": {payload[:300].decode(errors='replace')}"
    slot["response"] = {"Status": "FAILED", "Reason": (
        f"The Lambda {fn.function_name} returned without sending a response to the "
        f"ResponseURL (log group {lambda_log_group(fn)}){detail}")}
    slot["done"].set()


def cfn_response_app(environ, start_response):
    """Gap §3: receives the custom resource's PUT to its ResponseURL.

    Like an S3 presigned URL it refuses a non-empty Content-Type (403 SignatureDoesNotMatch),
    and like CloudFormation it fails a response body above 4096 bytes or that is not JSON.
    """
    if environ.get("CONTENT_TYPE"):
        body = (b"<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we "
                b"calculated does not match the signature you provided (send an empty "
                b"Content-Type)</Message></Error>")
        start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                         ("Content-Length", str(len(body)))])
        return [body]
    if environ.get("CONTENT_LENGTH"):
        raw = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
    else:
        raw = environ["wsgi.input"].read() if environ.get("wsgi.input_terminated") else b""
    slot = PENDING.get(environ["PATH_INFO"].rsplit("/", 1)[-1])
    if slot and not slot["done"].is_set():
        try:
            response = json.loads(raw)
        except ValueError:
            response = {"Status": "FAILED", "Reason": "Invalid response object: not JSON"}
        if len(raw) > 4096:
            response = {"Status": "FAILED", "Reason": "Response object is too long."}
        slot["response"] = response
        slot["done"].set()
    start_response("200 OK", [("Content-Length", "0")])
    return [b""]


def custom_get_attribute(self, name):
    """Gap: GetAtt of a key missing from a custom resource's Data returned None; AWS fails."""
    if name in self.data:
        return self.data[name]
    raise ResourceFailed(f"CustomResource attribute error: Vendor response doesn't contain "
                         f"{name} key in object {self.logical_id}")


# --------------------------------------------------------------------------------------
# Unsupported resource types: stubs instead of silently skipping them
# --------------------------------------------------------------------------------------


class StubResource(CloudFormationModel):
    """Gap §1: moto skips types it does not model, so Ref is empty and GetAtt breaks.

    A stub has a generated physical id (the name property if given, an id with the usual
    prefix, or an ARN where Ref is an ARN) and GetAtt placeholders: ARNs for *Arn, 5432 or
    6379 for *Port, AWS-shaped endpoint names for the *Address of RDS and ElastiCache
    (`<logical>.<stack>.emulator.local` for other types), the id otherwise.
    No service object exists, except for AWS::SecretsManager::Secret, which is created in
    moto's Secrets Manager (value from SecretString/GenerateSecretString, else none).
    """

    __module__ = "moto.cloudformation.emulator_stub"  # moto's model registry keys on it
    NAME_PROPERTY = {"AWS::RDS::DBCluster": "DBClusterIdentifier",
                     "AWS::RDS::DBInstance": "DBInstanceIdentifier",
                     "AWS::ElastiCache::CacheCluster": "ClusterName",
                     "AWS::ElastiCache::ReplicationGroup": "ReplicationGroupId",
                     "AWS::ElastiCache::SubnetGroup": "CacheSubnetGroupName",
                     "AWS::CloudWatch::Alarm": "AlarmName",
                     "AWS::Scheduler::Schedule": "Name",
                     "AWS::Logs::SubscriptionFilter": "FilterName",
                     "AWS::SecretsManager::Secret": "Name"}
    ID_PREFIX = {"AWS::ServiceDiscovery::PrivateDnsNamespace": "ns-",
                 "AWS::ServiceDiscovery::Service": "srv-",
                 "AWS::EC2::SecurityGroupEgress": "sgr-"}
    ARN_REF = {"AWS::ApplicationAutoScaling::ScalingPolicy", "AWS::CertificateManager::Certificate",
               "AWS::SecretsManager::SecretTargetAttachment"}

    def __init__(self, resource_type, logical_id, generated_name, props, account_id, region,
                 stack_id):
        self.cf_resource_type, self.logical_resource_id = resource_type, logical_id
        self.account_id, self.region, self.props = account_id, region, props
        self.stack_name = stack_id.split("/")[1]
        service, kind = resource_type.split("::")[1:3]
        name = props.get(self.NAME_PROPERTY.get(resource_type, ""))
        if resource_type in ("AWS::RDS::DBCluster", "AWS::RDS::DBInstance"):
            generated_name = generated_name.lower()
        self.name = name or generated_name
        self.arn = (f"arn:aws:{service.lower()}:{region}:{account_id}:"
                    f"{kind.lower()}/{self.name}")
        if resource_type in self.ID_PREFIX:
            self.id = self.ID_PREFIX[resource_type] + secrets.token_hex(8)
        elif resource_type in self.ARN_REF:
            self.id = self.arn
        else:
            self.id = self.name
        if resource_type == "AWS::SecretsManager::Secret":
            self._create_secret()
        if resource_type == "AWS::Lambda::EventInvokeConfig":
            apply_event_invoke_config(props, account_id, region)
        if resource_type == "AWS::CertificateManager::Certificate":
            try:  # a DNS-validated certificate in moto's ACM (acm_certificates.py)
                self.id = self.arn = acm_certificates.create(props, account_id, region)
            except ValueError as e:
                raise ResourceFailed(str(e)) from None

    def _create_secret(self):
        value = self.props.get("SecretString")
        generate = self.props.get("GenerateSecretString")
        if generate is not None:
            password = secrets.token_urlsafe(24)[: int(generate.get("PasswordLength", 32))]
            key = generate.get("GenerateStringKey")
            template = json.loads(generate.get("SecretStringTemplate") or "{}")
            value = json.dumps({**template, key: password}) if key else password
        backend = secretsmanager_backends[self.account_id][self.region]
        backend.create_secret(name=self.name, secret_string=value, secret_binary=None,
                              description=self.props.get("Description"), tags=None,
                              kms_key_id=self.props.get("KmsKeyId"), client_request_token=None,
                              replica_regions=[], force_overwrite=False)
        self.id = self.arn = backend.describe_secret(self.name).arn

    @property
    def physical_resource_id(self):
        return self.id

    @staticmethod
    def cloudformation_type():
        return "AWS::Emulator::Stub"

    @staticmethod
    def cloudformation_name_type():
        return ""

    @classmethod
    def has_cfn_attr(cls, attr):
        return True

    def get_cfn_attribute(self, attr):
        if attr.endswith("Arn"):
            return self.arn
        if attr.endswith("Port"):
            return "6379" if "ElastiCache" in self.cf_resource_type else "5432"
        if attr.endswith("Address"):
            return self._address()
        return self.id

    def _address(self) -> str:
        """Host names shaped like AWS's: the secrets Lambda accepts only RDS and
        ElastiCache endpoint names (lambdas/secrets/src/connection_urls.rs). Stable per
        resource (GetAtt is resolved many times), so the hash is of stack and id."""
        digest = hashlib.sha256(f"{self.stack_name}/{self.logical_resource_id}".encode())
        tag, name = digest.hexdigest()[:12], self.name.lower()
        area, zone, number = (self.region.split("-") + ["", "", ""])[:3]
        short = f"{area}{zone[:1]}{number}"  # us-east-1 -> use1, as ElastiCache names it
        if self.cf_resource_type == "AWS::RDS::DBCluster":
            return f"{name}.cluster-{tag}.{self.region}.rds.amazonaws.com"
        if self.cf_resource_type == "AWS::RDS::DBInstance":
            return f"{name}.{tag}.{self.region}.rds.amazonaws.com"
        if self.cf_resource_type == "AWS::ElastiCache::ReplicationGroup":
            return f"master.{name}.{tag[:6]}.{short}.cache.amazonaws.com"
        if self.cf_resource_type == "AWS::ElastiCache::CacheCluster":
            return f"{name}.{tag[:6]}.0001.{short}.cache.amazonaws.com"
        return f"{self.logical_resource_id.lower()}.{self.stack_name.lower()}.emulator.local"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        return cls(kwargs["ResourceType"], kwargs["LogicalId"], resource_name,
                   cloudformation_json.get("Properties") or {}, account_id, region_name,
                   kwargs["StackId"])

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        original_resource.props = cloudformation_json.get("Properties") or {}
        return original_resource

    def delete(self, account_id, region_name):
        if self.cf_resource_type == "AWS::Lambda::EventInvokeConfig" and \
                _event_invoke_config_target(self.props, account_id, region_name):
            apply_event_invoke_config(self.props, account_id, region_name, remove=True)
        if self.cf_resource_type == "AWS::CertificateManager::Certificate":
            acm_certificates.delete(self.arn, account_id, region_name)
        if self.cf_resource_type == "AWS::SecretsManager::Secret":
            secretsmanager_backends[account_id][region_name].delete_secret(
                self.arn, recovery_window_in_days=None, force_delete_without_recovery=True)


def resource_class_from_type(resource_type):
    """Gap §1: unknown types returned None (the resource was skipped); return StubResource."""
    if resource_type.startswith("Custom::") or resource_type == (
            "AWS::CloudFormation::CustomResource"):
        return CustomModel
    return parsing.get_model_map().get(resource_type) or StubResource


# --------------------------------------------------------------------------------------
# Intrinsic functions and template parsing
# --------------------------------------------------------------------------------------

_original_clean_json = parsing.clean_json


def clean_json(node, resources_map):
    """Gap §2: Fn::Sub "${Db.Endpoint.Address}" split on every dot. Split on the first one.

    Also accepts the string form {"Fn::GetAtt": "Db.Endpoint.Address"} and adds Fn::Cidr.
    """
    if isinstance(node, dict) and isinstance(node.get("Fn::GetAtt"), str):
        node = {**node, "Fn::GetAtt": node["Fn::GetAtt"].split(".", 1)}
    if isinstance(node, dict) and "Fn::Cidr" in node:  # gap: moto has no Fn::Cidr
        block, count, bits = clean_json(node["Fn::Cidr"], resources_map)
        network = ipaddress.ip_network(block, strict=False)
        subnets = network.subnets(new_prefix=network.max_prefixlen - int(bits))
        return [str(net) for net, _ in zip(subnets, range(int(count)))]
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        fallback = _unsupported_attribute(node["Fn::GetAtt"], resources_map)
        if fallback is not None:
            return fallback
    if not (isinstance(node, dict) and "Fn::Sub" in node):
        return _original_clean_json(node, resources_map)
    value = node["Fn::Sub"]
    template, variables = (value, {}) if isinstance(value, str) else value
    variables = {k: clean_json(v, resources_map) for k, v in variables.items()}

    def substitute(match):
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return str(_as_text(variables[name]))
        if "." in name:
            return str(clean_json({"Fn::GetAtt": name.split(".", 1)}, resources_map))
        return str(_as_text(clean_json({"Ref": name}, resources_map)))

    return re.sub(r"\$\{([^}]+)\}", substitute, template)


def _unsupported_attribute(get_att, resources_map):
    """Gap §1: GetAtt TaskDefinitionArn, ServiceArn, SecurityGroup VpcId... are unsupported by
    moto models that have the value: read the matching Python attribute (task_definition_arn,
    arn, vpc_id, id) instead. Returns None when moto supports the attribute itself."""
    name, attr = get_att
    resource = resources_map._parsed_resources.get(name)
    if resource is None or isinstance(resource, (StubResource, CustomModel)) or (
            not isinstance(resource, CloudFormationModel) or resource.has_cfn_attr(attr)):
        return None
    for candidate in (xform_name(attr), "arn" if attr.endswith("Arn") else "",
                      "id" if attr.endswith("Id") else ""):
        if candidate and getattr(resource, candidate, None) is not None:
            return getattr(resource, candidate)
    return None


def yaml_tag_constructor(loader, tag, node):
    """Gap §2: YAML `!GetAtt A.B.C` split on every dot and `!GetAtt [A, B]` kept yaml nodes."""
    if tag == "!Ref":
        return {"Ref": node.value}
    if tag == "!GetAtt" and not isinstance(node.value, list):
        return {"Fn::GetAtt": node.value.split(".", 1)}
    if isinstance(node, cfn_utils.yaml.SequenceNode):
        return {f"Fn::{tag[1:]}": loader.construct_sequence(node, deep=True)}
    if isinstance(node, cfn_utils.yaml.MappingNode):
        return {f"Fn::{tag[1:]}": loader.construct_mapping(node, deep=True)}
    return {f"Fn::{tag[1:]}": node.value}


def resource_map_getitem(self, key):
    """Resources are created only by the engine below; moto created them lazily on any
    lookup (even DescribeStacks after a rollback re-created deleted resources).
    A resource that does not exist (yet, or any more) resolves like a skipped one: None."""
    if key in self._parsed_resources:
        return self._parsed_resources[key]
    if key in self._resource_json_map:
        return None
    raise KeyError(key)


# --------------------------------------------------------------------------------------
# Stack operations: an asynchronous engine with per-resource events and rollback
# --------------------------------------------------------------------------------------

EMPTY_TEMPLATE = {"Resources": {}}
# logical id -> reason: the next create or update of that resource fails (once), so a test
# can fail a deploy after a given resource (POST /_emulator/fail-resource).
FAIL_NEXT: dict[str, str] = {}
FAIL_NEXT_LOCK = threading.Lock()


def _references(node, found: set) -> set:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                template = value if isinstance(value, str) else value[0]
                found.update(m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", template))
                _references(value if isinstance(value, list) else [], found)
            else:
                _references(value, found)
    elif isinstance(node, list):
        for item in node:
            _references(item, found)
    return found


def _is_custom(resource: dict) -> bool:
    rtype = resource.get("Type", "")
    return rtype.startswith("Custom::") or rtype == "AWS::CloudFormation::CustomResource"


def dependency_order(resources: dict) -> list[str]:
    """Logical ids ordered so that every Ref/GetAtt/Sub/DependsOn target comes first.

    Adversarial on purpose: CloudFormation creates resources that do not depend on each
    other in parallel ("CloudFormation creates, updates, and deletes resources in parallel
    when it can", AWS::CloudFormation DependsOn attribute page), so anything a custom
    resource needs but does not depend on may not exist yet when it runs. Here each custom
    resource, with what it transitively depends on, comes as early as the graph allows,
    before unrelated resources (ingress rules, routes): a missing DependsOn fails locally
    the way it can on AWS, every time instead of sometimes."""
    ordered, visiting = [], set()

    def visit(name):
        if name in ordered:
            return
        if name in visiting:
            raise ValidationError(message=f"Circular dependency between resources: {name}")
        visiting.add(name)
        depends_on = resources[name].get("DependsOn", [])
        deps = _references(resources[name].get("Properties", {}), set())
        deps.update([depends_on] if isinstance(depends_on, str) else depends_on)
        for dep in sorted(deps & resources.keys()):
            visit(dep)
        visiting.discard(name)
        ordered.append(name)

    customs = [name for name, resource in resources.items() if _is_custom(resource)]
    for name in customs + list(resources):
        visit(name)
    return ordered


def _event(stack, logical_id, resource_type, status, physical_id="", reason=None, props=None):
    stack.events.append(cfn_models.Event(
        stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=logical_id,
        physical_resource_id=physical_id or "", resource_type=resource_type,
        resource_status=status, resource_status_reason=reason,
        resource_properties=json.dumps(props, default=str) if props is not None else None))


def _set_status(stack, status, reason=None):
    stack.status, stack.status_reason = status, reason
    stack._add_stack_event(status, resource_status_reason=reason)


def _reason(error: Exception) -> str:
    if isinstance(error, ResourceFailed):
        return str(error)
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    code = getattr(error, "error_type", None) or getattr(error, "code", None)
    prefix = f"{code}: " if isinstance(code, str) else ""
    return f'Resource handler returned message: "{prefix}{message}"'


def _physical_id(resource) -> str:
    try:
        return str(getattr(resource, "physical_resource_id", "") or _as_text(resource) or "")
    except Exception:
        return ""


def _as_text(value):
    """Gap §1: Ref to a DBSubnetGroup or SecurityGroupIngress gives the moto object itself
    (moto's RDS needs that), which printed as a Python repr in Outputs and Fn::Sub."""
    if isinstance(value, CloudFormationModel):
        return getattr(value, "name", None) or getattr(value, "id", None) or ""
    return value


def _state(stack) -> dict:
    """Per-stack engine state: logical id -> {"json": resource json, "props": resolved}."""
    if not hasattr(stack, "emu_resources"):
        stack.emu_resources = {}
    return stack.emu_resources


def _prepare(stack, template: dict, parameters: dict) -> None:
    rmap = stack.resource_map
    rmap._template, rmap.input_parameters, rmap.resolved_parameters = template, parameters, {}
    rmap._resource_json_map = template.get("Resources") or {}
    rmap.load_mapping()
    rmap.transform_mapping()
    rmap.load_parameters()
    rmap.load_conditions()


def _create(stack, logical_id, resource_json, props):
    rmap, rtype = stack.resource_map, resource_json["Type"]
    if parsing.resource_class_from_type(rtype) is CustomModel:
        try:
            physical, data = call_custom_resource(stack, logical_id, rtype, "Create", props)
        except ResourceFailed as failed:  # a FAILED Create is followed by a Delete of its id
            if failed.physical_id:
                _remember(stack, logical_id, resource_json, props,
                          _custom_model(stack, logical_id, rtype, failed.physical_id, {}))
            raise
        return _custom_model(stack, logical_id, rtype, physical, data)
    if rtype == "AWS::RDS::DBInstance" and props.get("DBClusterIdentifier"):
        # Gap: moto's DBInstance knows no Aurora engine ("KeyError: 'aurora-postgresql'")
        # and moto creates no DBCluster from a template: a cluster member is a stub too.
        name = f"{stack.name}-{logical_id}-{secrets.token_hex(6)}".lower()
        return StubResource(rtype, logical_id, name, props, stack.account_id,
                            stack.region_name, stack.stack_id)
    return parsing.parse_and_create_resource(logical_id, copy.deepcopy(resource_json), rmap,
                                             stack.account_id, stack.region_name)


def _custom_model(stack, logical_id, rtype, physical_id, data):
    model = CustomModel(stack.region_name, "", logical_id, physical_id)
    model.set_data(data)
    model.cf_resource_type, model.logical_resource_id = rtype, logical_id
    return model


def _remember(stack, logical_id, resource_json, props, resource):
    stack.resource_map._parsed_resources[logical_id] = resource
    _state(stack)[logical_id] = {"json": resource_json, "props": props}


def _update(stack, logical_id, resource_json, props, old):
    """Update in place (Custom: an Update request); types without an update: replace."""
    rmap, rtype = stack.resource_map, resource_json["Type"]
    current = rmap._parsed_resources[logical_id]
    resource_class = parsing.resource_class_from_type(rtype)
    if isinstance(current, StubResource) and old["json"]["Type"] == rtype:
        current.props = props  # a stub has nothing behind it to update
        if rtype == "AWS::Lambda::EventInvokeConfig":  # but this one's settings apply
            apply_event_invoke_config(props, stack.account_id, stack.region_name)
        return current
    if resource_class is CustomModel:
        physical, data = call_custom_resource(stack, logical_id, rtype, "Update", props,
                                              _physical_id(current), old["props"])
        if physical != _physical_id(current):  # replacement: delete the old one afterwards
            stack.emu_replaced.append((logical_id, old, current))
        return _custom_model(stack, logical_id, rtype, physical, data)
    updatable = not hasattr(resource_class.update_from_cloudformation_json, "__isabstractmethod__")
    if old["json"]["Type"] == rtype and updatable:
        updated = parsing.parse_and_update_resource(logical_id, copy.deepcopy(resource_json),
                                                    rmap, stack.account_id, stack.region_name)
        if updated is not None:
            return updated
    _delete(stack, current, old)
    return _create(stack, logical_id, resource_json, props)


def _delete(stack, resource, entry):
    resource_json = {**entry["json"], "Properties": entry["props"]}
    rtype = resource_json["Type"]
    if parsing.resource_class_from_type(rtype) is CustomModel:
        call_custom_resource(stack, resource.logical_resource_id, rtype, "Delete",
                             entry["props"], _physical_id(resource))
    elif resource is not None and not _delete_ec2(stack, rtype, resource):
        stack.resource_map._delete_resource(resource, resource_json)


def _delete_ec2(stack, rtype, resource) -> bool:
    """Gap: moto cannot delete these EC2 types from CloudFormation (it skips them silently),
    so the VPC kept dependencies and DeleteStack failed."""
    ec2 = ec2_backends[stack.account_id][stack.region_name]
    if rtype == "AWS::EC2::VPCGatewayAttachment" and resource.gateway_id:
        ec2.detach_internet_gateway(resource.gateway_id, resource.vpc_id)
    elif rtype == "AWS::EC2::InternetGateway":
        ec2.delete_internet_gateway(resource.id)
    elif rtype == "AWS::EC2::Route":
        ec2.delete_route(resource.route_table.id, resource.destination_cidr_block)
    elif rtype == "AWS::EC2::SubnetRouteTableAssociation":
        table = ec2.get_route_table(resource.route_table_id)
        for association, subnet in list(table._associations.items()):
            if subnet == resource.subnet_id:
                ec2.disassociate_route_table(association)
        ec2.subnet_associations.pop(f"{resource.route_table_id}:{resource.subnet_id}", None)
    elif rtype == "AWS::EC2::RouteTable":
        ec2.delete_route_table(resource.id)
    else:
        return False
    return True


def converge(stack, template: dict, parameters: dict, best_effort=False) -> list[str]:
    """Create or update every resource of `template`, in dependency order.

    Returns the logical ids that failed (stops at the first one unless best_effort)."""
    _prepare(stack, template, parameters)
    rmap, state, failed = stack.resource_map, _state(stack), []
    stack.emu_wanted, stack.emu_replaced = set(), getattr(stack, "emu_replaced", [])
    for logical_id in dependency_order(rmap._resource_json_map):
        resource_json = rmap._resource_json_map[logical_id]
        condition = resource_json.get("Condition")
        if condition and not rmap.lazy_condition_map[condition]:
            continue
        stack.emu_wanted.add(logical_id)
        rtype, old = resource_json["Type"], state.get(logical_id)
        prefix = "UPDATE" if old else "CREATE"
        physical = _physical_id(rmap._parsed_resources.get(logical_id)) if old else ""
        props = None
        try:
            props = parsing.clean_json(copy.deepcopy(resource_json.get("Properties") or {}), rmap)
            if old and old["props"] == props and old["json"]["Type"] == rtype:
                continue  # unchanged: no event, no request
            _event(stack, logical_id, rtype, f"{prefix}_IN_PROGRESS", physical, props=props)
            with FAIL_NEXT_LOCK:
                injected = FAIL_NEXT.pop(logical_id, None)
            if injected is not None:  # POST /_emulator/fail-resource: a test's failure
                raise ResourceFailed(injected)
            resource = (_update(stack, logical_id, resource_json, props, old) if old
                        else _create(stack, logical_id, resource_json, props))
            resource.cf_resource_type, resource.logical_resource_id = rtype, logical_id
            _remember(stack, logical_id, resource_json, props, resource)
            _event(stack, logical_id, rtype, f"{prefix}_COMPLETE", _physical_id(resource))
        except Exception as error:
            if not isinstance(error, ResourceFailed):
                log.exception("%s %s failed", prefix.lower(), logical_id)
            _event(stack, logical_id, rtype, f"{prefix}_FAILED", physical, _reason(error))
            if old and props is not None:  # state unknown: a rollback must update it back
                old["props"] = props
            failed.append(logical_id)
            if not best_effort:
                break
    return failed


def cleanup(stack, *, deleting_stack=False, create_rollback=False) -> list[str]:
    """Delete what the last converge() no longer wants (and custom resources it replaced),
    newest first. Honours DeletionPolicy with a DELETE_SKIPPED event (moto honoured Retain
    only in DeleteStack, without events). Returns the logical ids that failed to delete."""
    rmap, state, failed = stack.resource_map, _state(stack), []
    wanted = set() if deleting_stack or create_rollback else stack.emu_wanted
    replaced, stack.emu_replaced = getattr(stack, "emu_replaced", []), []
    doomed = [(logical, state[logical], rmap._parsed_resources.get(logical), True)
              for logical in reversed(list(state)) if logical not in wanted]
    for logical_id, entry, resource, forget in [(*r, False) for r in replaced] + doomed:
        rtype, physical = entry["json"]["Type"], _physical_id(resource)
        policy = entry["json"].get("DeletionPolicy", "Delete")
        if policy == "Retain" or (policy == "RetainExceptOnCreate" and not create_rollback) or (
                policy == "Snapshot" and isinstance(resource, StubResource)):
            _event(stack, logical_id, rtype, "DELETE_SKIPPED", physical)
        else:
            _event(stack, logical_id, rtype, "DELETE_IN_PROGRESS", physical)
            try:
                _delete(stack, resource, entry)
                _event(stack, logical_id, rtype, "DELETE_COMPLETE", physical)
            except Exception as error:
                _event(stack, logical_id, rtype, "DELETE_FAILED", physical, _reason(error))
                failed.append(logical_id)
                continue
        if forget:
            state.pop(logical_id, None)
            rmap._parsed_resources.pop(logical_id, None)
    return failed


def _publish_outputs(stack, template: dict) -> None:
    """Gap §2: stacks made through a change set had no Outputs. Computed once, at the end."""
    backend = cfn_models.cloudformation_backends[stack.account_id][stack.region_name]
    output_map = parsing.OutputMap(stack.resource_map, template, stack.stack_id)
    exports = output_map.exports
    for export in exports:
        owner = backend.exports.get(export.name)
        if owner is not None and owner.exporting_stack_id != stack.stack_id:
            raise ResourceFailed(f"Export with name {export.name} is already exported by "
                                 f"stack {owner.exporting_stack_id}")
    names = {e.value: e.name for e in exports}
    outputs = [{"OutputKey": o.key, "OutputValue": str(_as_text(o.value)),
                "Description": o.description,
                "ExportName": names.get(o.value)} for o in output_map.values() if o]
    _withdraw_exports(stack)
    backend.exports.update({e.name: e for e in exports})
    stack.emu_outputs, stack.emu_exports = outputs or None, exports


def _withdraw_exports(stack) -> None:
    backend = cfn_models.cloudformation_backends[stack.account_id][stack.region_name]
    for export in getattr(stack, "emu_exports", []):
        backend.exports.pop(export.name, None)
    stack.emu_exports = []


def run_create(stack, template: dict, parameters: dict) -> bool:
    """CREATE_IN_PROGRESS -> CREATE_COMPLETE, or -> ROLLBACK_IN_PROGRESS -> ROLLBACK_COMPLETE."""
    _set_status(stack, "CREATE_IN_PROGRESS", "User Initiated")
    failed = converge(stack, template, parameters)
    if not failed:
        try:
            _publish_outputs(stack, template)
            stack.parameters = parameters
            _set_status(stack, "CREATE_COMPLETE")
            return True
        except Exception as error:
            _set_status(stack, "CREATE_FAILED", _reason(error))
    _set_status(stack, "ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create: "
                f"[{', '.join(failed)}]. Rollback requested by user.")
    errors = cleanup(stack, create_rollback=True)
    stack.emu_outputs = None
    _set_status(stack, "ROLLBACK_FAILED" if errors else "ROLLBACK_COMPLETE")
    return False


def run_update(stack, template: dict, parameters: dict, template_body: str) -> bool:
    """UPDATE_IN_PROGRESS -> UPDATE_COMPLETE_CLEANUP_IN_PROGRESS -> UPDATE_COMPLETE, or
    -> UPDATE_ROLLBACK_IN_PROGRESS -> ... -> UPDATE_ROLLBACK_COMPLETE (old template re-applied:
    custom resources get an Update with the old properties, new resources are deleted)."""
    old = (stack.template, stack.template_dict, dict(stack.parameters or {}))
    _set_status(stack, "UPDATE_IN_PROGRESS", "User Initiated")
    failed = converge(stack, template, parameters)
    if not failed:
        try:
            _publish_outputs(stack, template)
            stack.template, stack.template_dict, stack.parameters = template_body, template, parameters
            stack.description = template.get("Description")
            _set_status(stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
            cleanup(stack)
            _set_status(stack, "UPDATE_COMPLETE")
            return True
        except Exception as error:
            failed = [_reason(error)]
    _set_status(stack, "UPDATE_ROLLBACK_IN_PROGRESS", "The following resource(s) failed to "
                f"update: [{', '.join(failed)}].")
    stack.template, stack.template_dict, stack.parameters = old
    errors = converge(stack, old[1] or EMPTY_TEMPLATE, old[2], best_effort=True)
    _set_status(stack, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
    errors += cleanup(stack)
    _set_status(stack, "UPDATE_ROLLBACK_FAILED" if errors else "UPDATE_ROLLBACK_COMPLETE")
    return False


def run_delete(backend, stack) -> None:
    """DELETE_IN_PROGRESS -> DELETE_COMPLETE (Retain: DELETE_SKIPPED), or DELETE_FAILED."""
    _set_status(stack, "DELETE_IN_PROGRESS", "User Initiated")
    failed = cleanup(stack, deleting_stack=True)
    if failed:
        _set_status(stack, "DELETE_FAILED", "The following resource(s) failed to delete: "
                    f"[{', '.join(failed)}].")
        return
    _withdraw_exports(stack)
    stack.emu_outputs = None
    # A deleted stack answers by its id only ("Stack with id <name> does not exist" by
    # name, as AWS does), so it leaves the live stacks before DELETE_COMPLETE shows.
    backend.deleted_stacks[stack.stack_id] = stack
    backend.stacks.pop(stack.stack_id, None)
    _set_status(stack, "DELETE_COMPLETE")


def _in_background(target, *args) -> None:
    def guarded():
        try:
            target(*args)
        except Exception:  # keep the server alive; the stack shows where it stopped
            log.exception("stack operation crashed")
    threading.Thread(target=guarded, daemon=True).start()


def _check_idle(stack) -> None:
    if stack.status.endswith("_IN_PROGRESS") and stack.status != "REVIEW_IN_PROGRESS":
        raise ValidationError(message=f"Stack:{stack.stack_id} is in {stack.status} state and "
                                      "can not be updated.")


def _validate(backend, name, template: dict, parameters: dict) -> None:
    """Template and parameter errors are API errors, before anything starts."""
    parsing.ResourceMap("validate", name, parameters, {}, backend.region_name,
                        backend.account_id, template, backend.exports).load()
    dependency_order(template.get("Resources") or {})


# --- DescribeStackResource: the engine's per-resource status -----------------------------

# (stack id, logical id) -> {"type", "status"}: a resource that the e2e harness, standing
# in for CloudFormation, says it is running (POST /_emulator/cfn-running). The harness
# invokes custom resources itself for a stack the engine never deployed.
HARNESS_RUNNING: dict[tuple[str, str], dict] = {}
HARNESS_LOCK = threading.Lock()


def _stack_resource_detail(backend, stack_name: str, logical_id: str):
    """The resource as CloudFormation reports it now, or ValidationError like AWS."""
    with HARNESS_LOCK:
        recorded = HARNESS_RUNNING.get((stack_name, logical_id))
    if recorded is not None:
        return types.SimpleNamespace(
            stack_id=stack_name, stack_name=stack_name.split("/")[1],
            logical_resource_id=logical_id, physical_resource_id="",
            resource_type=recorded["type"], resource_status=recorded["status"],
            resource_status_reason=None, last_updated_timestamp=utcnow())
    stack = backend.get_stack(stack_name)
    # The newest event of the resource holds its status: the engine writes one per
    # transition (converge/cleanup), as CloudFormation does.
    for event in reversed(stack.events):
        if (event.logical_resource_id == logical_id
                and event.resource_type != "AWS::CloudFormation::Stack"):
            return types.SimpleNamespace(
                stack_id=stack.stack_id, stack_name=stack.name,
                logical_resource_id=logical_id,
                physical_resource_id=event.physical_resource_id or None,
                resource_type=event.resource_type, resource_status=event.resource_status,
                resource_status_reason=event.resource_status_reason,
                last_updated_timestamp=event.timestamp)
    raise ValidationError(stack_name,
                          f"Resource {logical_id} does not exist for stack {stack_name}")


def describe_stack_resource_response(self):
    """Gap: moto answered every resource with the *stack's* status (StackResourceDTO sets
    ResourceStatus = stack.status) and knew a custom resource only once it was complete,
    so "is CloudFormation creating this resource now?" (the Lambdas' origin check,
    lambdas/cfn-custom-resource/src/origin.rs) had no true answer."""
    detail = _stack_resource_detail(self.cloudformation_backend, self._get_param("StackName"),
                                    self._get_param("LogicalResourceId"))
    return ActionResult({"StackResourceDetail": detail})


# --- patched backend and model methods ------------------------------------------------


def create_stack(self, name, template, parameters, notification_arns=None, tags=None,
                 role_arn=None, enable_termination_protection=False, timeout_in_mins=None,
                 stack_policy_body=None):
    """Gaps §2/§3: CreateStack was synchronous, had no resource events and no rollback."""
    if any(s.name == name for s in self.stacks.values()):
        raise cfn_models.AlreadyExistsException(f"Stack [{name}] already exists")
    template_dict = cfn_models.Stack.parse_template(template)
    _validate(self, name, template_dict, parameters)
    stack = cfn_models.Stack(
        stack_id=cfn_utils.generate_stack_id(name, self.region_name, self.account_id),
        name=name, template={}, parameters=parameters, account_id=self.account_id,
        region_name=self.region_name, notification_arns=notification_arns, tags=tags,
        role_arn=role_arn, enable_termination_protection=enable_termination_protection,
        timeout_in_mins=timeout_in_mins, stack_policy_body=stack_policy_body)
    stack.template, stack.template_dict = template, template_dict
    stack.description = template_dict.get("Description")
    stack.status = "CREATE_IN_PROGRESS"
    self.stacks[stack.stack_id] = stack
    _in_background(run_create, stack, template_dict, parameters)
    return stack


def stack_update(self, template, role_arn=None, parameters=None, tags=None):
    """Gap §2: UpdateStack was synchronous and did not apply some changes (a LogGroup's
    RetentionInDays, since moto cannot update a LogGroup; now such types are replaced)."""
    _check_idle(self)
    template_dict = cfn_models.Stack.parse_template(template)
    backend = cfn_models.cloudformation_backends[self.account_id][self.region_name]
    _validate(backend, self.name, template_dict, parameters or {})
    self.role_arn = role_arn or self.role_arn
    if tags is not None:
        self.tags = tags
    self.status = "UPDATE_IN_PROGRESS"
    _in_background(run_update, self, template_dict, parameters or {}, template)


def find_change_set(self, change_set_name, stack_name=None):
    """Gap §2: change sets were found by name only, ignoring StackName."""
    if change_set_name in self.change_sets:
        return self.change_sets[change_set_name]
    matches = [cs for cs in self.change_sets.values() if cs.change_set_name == change_set_name
               and (not stack_name or stack_name in (cs.stack_name, cs.stack_id))]
    if not matches:
        raise ValidationError(message=f"ChangeSet [{change_set_name}] does not exist")
    return matches[-1]


_original_create_change_set = cfn_models.CloudFormationBackend.create_change_set


def create_change_set(self, stack_name, change_set_name, template, parameters, description,
                      change_set_type, **kwargs):
    """Gap: a CREATE change set for the name of a live stack made a second stack."""
    if change_set_type == "CREATE" and any(s.name == stack_name for s in self.stacks.values()):
        raise cfn_models.AlreadyExistsException(f"Stack [{stack_name}] already exists and "
                                                "cannot be created again with a change set")
    return _original_create_change_set(self, stack_name, change_set_name, template, parameters,
                                       description, change_set_type, **kwargs)


def describe_change_set(self, change_set_name, stack_name=None):
    return find_change_set(self, change_set_name, stack_name)


def delete_change_set(self, change_set_name, stack_name=None):
    self.change_sets.pop(find_change_set(self, change_set_name, stack_name).change_set_id)


def execute_change_set(self, change_set_name, stack_name=None):
    """Gaps §2/§3: execution was synchronous, attached no template (so no Outputs) and
    ignored FAILED custom resources. Now asynchronous; poll DescribeStacks."""
    change_set = find_change_set(self, change_set_name, stack_name)
    if change_set.execution_status != "AVAILABLE":
        raise ValidationError(message=f"ChangeSet [{change_set.change_set_id}] cannot be "
                                      f"executed in its current status of "
                                      f"[{change_set.execution_status}]")
    stack = self.stacks[change_set.stack_id]
    _check_idle(stack)
    template, parameters = change_set.template_dict, change_set.parameters or {}
    _validate(self, stack.name, template, parameters)
    change_set.execution_status = "EXECUTE_IN_PROGRESS"
    if change_set.change_set_type == "CREATE":
        stack.template, stack.template_dict = change_set.template, template
        stack.description = template.get("Description")
        stack.status = "CREATE_IN_PROGRESS"
    else:
        stack.status = "UPDATE_IN_PROGRESS"

    def execute():
        if change_set.change_set_type == "CREATE":
            ok = run_create(stack, template, parameters)
        else:
            ok = run_update(stack, template, parameters, change_set.template)
        change_set.execution_status = "EXECUTE_COMPLETE" if ok else "EXECUTE_FAILED"

    _in_background(execute)


def delete_stack(self, name_or_stack_id):
    """Gap: DeleteStack was synchronous, sent no Delete to custom resources, recorded no
    resource events and no DELETE_SKIPPED for DeletionPolicy Retain."""
    for stack in list(self.stacks.values()):
        if name_or_stack_id in (stack.stack_id, stack.name):
            if stack.status == "DELETE_IN_PROGRESS":
                return
            _check_idle(stack)
            stack.status = "DELETE_IN_PROGRESS"
            _in_background(run_delete, self, stack)
            return


def describe_change_set_response(self):
    result = self.cloudformation_backend.describe_change_set(
        self._get_param("ChangeSetName"), self._get_param("StackName"))
    return cfn_responses.ActionResult(result)


def delete_change_set_response(self):
    self.cloudformation_backend.delete_change_set(
        self._get_param("ChangeSetName"), self._get_param("StackName"))
    return EmptyResult()


def update_termination_protection_response(self):
    """Gap: moto 5.2.5 does not implement UpdateTerminationProtection (it answers 500),
    which `deploy` calls for a stack file with `termination_protection: true` (prod)."""
    stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
    stack.enable_termination_protection = str(
        self._get_param("EnableTerminationProtection")).lower() == "true"
    return cfn_responses.ActionResult({"StackId": stack.stack_id})


# --------------------------------------------------------------------------------------
# ECS one-off tasks
# --------------------------------------------------------------------------------------

_ONE_OFF = threading.local()  # set while the RunTask API runs (tasks.py decides its end)


def run_task_response(self):
    """RunTask from the API: its tasks are one-off tasks whose end tasks.py decides (task
    sets also start tasks through the backend; those are not one-off)."""
    _ONE_OFF.active = True
    try:
        return ORIGINAL["run_task_response"](self)
    finally:
        _ONE_OFF.active = False


def run_task(self, *args, **kwargs):
    started = ORIGINAL["run_task"](self, *args, **kwargs)
    if getattr(_ONE_OFF, "active", False):
        for task in started:
            try:
                tasks.emulate(self, task, REGISTRY)
            except Exception as e:  # an emulator bug must not look like a task outcome
                log.exception("deciding the outcome of %s failed", task.task_arn)
                reason = f"[emulator error] {type(e).__name__}: {e}"
                task.emu_outcome = tasks.Outcome(None, [], reason, reason, "TaskFailedToStart",
                                                 write_logs=False)
    return started


def describe_tasks(self, cluster_str, tasks_wanted):
    """Gap: moto's RunTask tasks never stop, so a custom resource waiting for a one-off
    task (the database migration) would wait forever. One-off tasks are reported STOPPED,
    with the outcome tasks.emulate decided at RunTask (exit code or stop reason), and
    their output is written to their awslogs stream."""
    found = ORIGINAL["describe_tasks"](self, cluster_str, tasks_wanted)
    for task in found:
        if getattr(task, "emu_outcome", None) is not None:
            tasks.stop(self, task)
    return found


def list_tasks(self, cluster_str=None, container_instance=None, family=None,
               started_by=None, service_name=None, desiredStatus=None):
    """Gap: moto ignores serviceName ("we can't filter on service_name until the backend
    actually launches tasks"); a service's tasks are those of its group
    `service:<name>`, as ECS sets it."""
    found = ORIGINAL["list_tasks"](self, cluster_str, container_instance, family,
                                   started_by, None, desiredStatus)
    if service_name:
        name = service_name.rsplit("/", 1)[-1]
        found = [t for t in found if t.group == f"service:{name}"]
    return found


def update_service(self, service_properties):
    """Recorded for the service scheduler's event list (ecs_service.EVENTS)."""
    name = str(service_properties.get("service", "")).rsplit("/", 1)[-1]
    wanted = service_properties.get("desired_count")
    try:
        before = self._get_service(service_properties.get("cluster", "default"),
                                   name).desired_count
    except Exception:  # noqa: BLE001 - moto raises its own error below
        before = None
    service = ORIGINAL["update_service"](self, service_properties)
    if wanted is not None:
        ecs_service.record("desired-count", service=name, before=before, desired=wanted)
        with ecs_service.LOCK:
            if (self.account_id, self.region_name, service.cluster_name, service.name) in \
                    ecs_service.MANAGED:
                ecs_service.reconcile(self, service.cluster_name, service.name)
    return service


def tag_resource(self, arn, tags):
    ORIGINAL["tag_resource"](self, arn, tags)
    if ":task/" in arn:
        ecs_service.record("task-tagged", task=arn, tags=dict(tags))


def untag_resource(self, resource_arn, tag_keys):
    ORIGINAL["untag_resource"](self, resource_arn, tag_keys)
    if ":task/" in resource_arn:
        ecs_service.record("task-untagged", task=resource_arn, keys=list(tag_keys))


def get_stack_from_s3_url(template_url, account_id, partition):
    """Gap: moto reads a TemplateURL's bucket from the host name unless the host is
    `localhost` or `s3*.amazonaws.com`, so `http://127.0.0.1:<port>/<bucket>/<key>` (the
    path-style URL of an emulator) found a bucket named "127". Path style here."""
    from urllib.parse import urlparse
    from moto.s3.models import s3_backends
    parts = urlparse(template_url)
    if parts.hostname and (parts.hostname[0].isdigit() or parts.hostname == "localhost"):
        bucket, key = parts.path.lstrip("/").split("/", 1)
        obj = s3_backends[account_id][partition].get_object(bucket, key)
        return obj.value.decode("utf-8")
    return ORIGINAL["get_stack_from_s3_url"](template_url, account_id, partition)


def log_group_attribute(self, attribute_name):
    """Gap: moto's GetAtt LogGroup.Arn lacks the trailing ":*" that CloudFormation returns
    ("arn:aws:logs:us-west-1:123456789012:log-group:/mystack-testgroup-12ABC1AB12A1:*",
    AWS::Logs::LogGroup return values). IAM statements built from it cover the group's
    streams only with that ":*", so the difference decides whether a role may write logs."""
    if attribute_name == "Arn":
        return f"{self.arn}:*"
    return ORIGINAL["log_group_attribute"](self, attribute_name)


# --------------------------------------------------------------------------------------
# CloudWatch Logs: FilterLogEvents as AWS answers it (what log followers rely on)
# --------------------------------------------------------------------------------------

EVENT_ID_LOCK = threading.Lock()


def log_event_init(self, ingestion_time: int, log_event: dict) -> None:
    """Gap: moto numbered events from a class counter read and incremented without a lock,
    so two writers at once (a Lambda's log delivery, a build's, a function's own
    PutLogEvents) could give two events one eventId; a FilterLogEvents reader that tells
    events apart by eventId (providers/airflow-stack-lambda, follower.py) then drops one.
    AWS's eventId is unique (FilteredLogEvent, "The ID of the event",
    https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilteredLogEvent.html)."""
    from moto.logs.models import LogEvent
    self.ingestion_time = ingestion_time
    self.timestamp = log_event["timestamp"]
    self.message = log_event["message"]
    with EVENT_ID_LOCK:
        self.event_id = LogEvent._event_id
        LogEvent._event_id += 1


def _filter_sort_key(event: dict) -> tuple:
    return event["timestamp"], event["ingestionTime"], int(event["eventId"])


def log_group_filter_log_events(self, log_group_name, log_stream_names, start_time,
                                end_time, limit, next_token, filter_pattern, interleaved):
    """Gaps in moto's FilterLogEvents, as the CloudWatch Logs API reference describes it
    (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilterLogEvents.html):
    - moto returned the events stream by stream unless the request set `interleaved`; AWS
      ignores `interleaved` ("As of June 17, 2019, this parameter is ignored and the value
      is assumed to be true") and returns the events of all streams "sorted by event
      timestamp, the timestamp when the event was ingested by CloudWatch Logs, and the ID
      of the PutLogEvents request" (here: timestamp, ingestion time, eventId);
    - moto iterated the group's streams while another thread (a Lambda starting, a build)
      created one: "dictionary changed size during iteration", a 500 to the reader.
    The rest is moto's: startTime and endTime bound the event timestamps (both
    inclusive), filterPattern as moto matches it, `limit` (default 10,000) events a page,
    and a nextToken naming the last event returned, so the next page starts right after
    it in the same order: every event is returned once over the pages, and an event
    ingested meanwhile with a timestamp before the token's is left to the next search."""
    streams = [stream for name, stream in list(self.streams.items())
               if not log_stream_names or name in log_stream_names]
    events = []
    for stream in streams:
        events += stream.filter_log_events(start_time, end_time, filter_pattern)
    events.sort(key=_filter_sort_key)
    first = 0
    if next_token:
        try:
            group, stream_name, event_id = next_token.split("@")
            if group != log_group_name:
                raise ValueError(next_token)
            first = next(i for i, e in enumerate(events) if e["logStreamName"] == stream_name
                         and e["eventId"] == event_id) + 1
        except (ValueError, StopIteration):
            events, first = [], 0  # moto's answer to a token it does not know: no events
    page = events[first:first + (limit or 10_000)]
    token = None
    if page and first + len(page) < len(events):
        token = f"{log_group_name}@{page[-1]['logStreamName']}@{page[-1]['eventId']}"
    searched = [{"logStreamName": s.log_stream_name, "searchedCompletely": True}
                for s in streams]
    return page, token, searched


def _task_definition_from_cfn(properties: dict, account_id: str, region_name: str):
    """Gap: moto's CloudFormation TaskDefinition registered only Family, containers,
    volumes and Memory; NetworkMode, RequiresCompatibilities, Cpu, ExecutionRoleArn,
    TaskRoleArn, RuntimePlatform and Tags were dropped, so a Fargate task had no awsvpc
    network and no roles to check. All of them are registered here."""
    from moto.core.utils import pascal_to_camelcase, remap_nested_keys
    from moto.ecs.models import ecs_backends as backends

    def api(value):
        return remap_nested_keys(value, pascal_to_camelcase) if value else value
    p = properties
    return backends[account_id][region_name].register_task_definition(
        family=p.get("Family") or f"task-definition-{secrets.randbelow(10**6)}",
        container_definitions=api(p.get("ContainerDefinitions", [])),
        volumes=api(p.get("Volumes", [])), network_mode=p.get("NetworkMode"),
        tags=[{"key": t["Key"], "value": t["Value"]} for t in p.get("Tags") or []],
        placement_constraints=api(p.get("PlacementConstraints")),
        requires_compatibilities=p.get("RequiresCompatibilities"),
        cpu=p.get("Cpu"), memory=p.get("Memory"), task_role_arn=p.get("TaskRoleArn"),
        execution_role_arn=p.get("ExecutionRoleArn"),
        runtime_platform=api(p.get("RuntimePlatform")), ipc_mode=p.get("IpcMode"),
        pid_mode=p.get("PidMode"), ephemeral_storage=api(p.get("EphemeralStorage")))


def task_definition_create(cls, resource_name, cloudformation_json, account_id, region_name,
                           **kwargs):
    return _task_definition_from_cfn(cloudformation_json.get("Properties") or {}, account_id,
                                     region_name)


def task_definition_update(cls, original_resource, new_resource_name, cloudformation_json,
                           account_id, region_name):
    """A task definition is immutable: any change registers a new revision (AWS replaces
    the resource); the old revision is deregistered."""
    from moto.ecs.models import ecs_backends as backends
    backends[account_id][region_name].deregister_task_definition(original_resource.arn)
    return _task_definition_from_cfn(cloudformation_json.get("Properties") or {}, account_id,
                                     region_name)


def subnet_association_create(cls, resource_name, cloudformation_json, account_id,
                              region_name, **kwargs):
    """Gap: moto's CloudFormation SubnetRouteTableAssociation was only a record; the
    subnet stayed on the VPC's main route table (DescribeRouteTables showed no
    association), so its routes did not apply. Associated for real here."""
    from moto.ec2.models.subnets import SubnetRouteTableAssociation
    properties = cloudformation_json["Properties"]
    ec2 = ec2_backends[account_id][region_name]
    association = SubnetRouteTableAssociation(properties["RouteTableId"],
                                              properties["SubnetId"])
    association.id = ec2.associate_route_table(properties["RouteTableId"],
                                               subnet_id=properties["SubnetId"])
    ec2.subnet_associations[f"{association.route_table_id}:{association.subnet_id}"] = \
        association
    return association


def role_update(cls, original_resource, new_resource_name, cloudformation_json, account_id,
                region_name):
    """Gap: moto's CloudFormation Role update changed the description only; its inline
    Policies (and trust policy) stayed as first created. With IAM enforced that matters:
    an update that grants or removes a permission must take effect."""
    role = ORIGINAL["role_update"].__func__(cls, original_resource, new_resource_name,
                                           cloudformation_json, account_id, region_name)
    properties = cloudformation_json.get("Properties") or {}
    wanted = {p["PolicyName"]: p["PolicyDocument"] for p in properties.get("Policies") or []}
    for name in list(role.policies):
        if name not in wanted:
            role.delete_policy(name)
    for name, document in wanted.items():
        role.put_policy(name, document)
    trust = properties.get("AssumeRolePolicyDocument")
    if trust is not None:
        role.assume_role_policy_document = trust if isinstance(trust, str) else json.dumps(trust)
    return role


def task_resource_requirements(task_definition):
    """Gap: moto sums container-level memory to place a task and fails with a TypeError
    on Fargate task definitions, which size the task (Cpu/Memory) and not its
    containers. Fargate has no placement, so the task-level size is the answer."""
    return {"CPU": int(task_definition.cpu or 0), "MEMORY": int(task_definition.memory or 0),
            "PORTS": [], "PORTS_UDP": []}


def _json_reply(start_response, status: str, value) -> list[bytes]:
    body = json.dumps(value, default=str).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _read_body(environ) -> bytes:
    """Reads the request body and puts it back, so moto can read it again."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def emulator_api(environ, start_response):
    """The emulator's own endpoints (none of them is an AWS API):

    POST /_emulator/identities        register an identity (authz.Registry.register)
    GET  /_emulator/identities        the registered identities (names, keys, principals)
    GET  /_emulator/calls             every decision for a registered identity, in order
                                      (?identity=<name> filters, ?since=<seq> skips)
    DELETE /_emulator/calls           forget the decisions so far
    POST /_emulator/ecs-task-exit/<n> exit code of the next one-off task (then 0 again)
    POST /_emulator/ecs-task-output   {"lines": [...]}: output of the next one-off task
    GET  /_emulator/schema            the migration schema model (tasks.SCHEMA)
    GET  /_emulator/recursion-stops   invocations stopped as a recursive loop (function,
                                      count in its chain, asynchronous or not)
    POST /_emulator/cfn-running       {"stack_id", "logical_id", "resource_type", "status"}:
                                      DescribeStackResource answers that status for it
                                      (the e2e harness plays CloudFormation for a stack
                                      the engine did not deploy)
    POST /_emulator/fail-resource     {"logical_id", "reason"}: the next create or update
                                      of that resource fails with the reason (once)
    PUT  /_emulator/cfn-response/<id> a custom resource's response (its ResponseURL)
    POST /_emulator/ecs-services      {"cluster", "service", "stop_timeout"}: the emulator
                                      keeps that service's tasks at its desiredCount
                                      (ecs_service.py)
    GET  /_emulator/ecs-services/<cluster>/<service>  its tasks, for the harness to run
    POST /_emulator/ecs-tasks/<id>/running  {"ip", "task_role_key", "host"}: started
    POST /_emulator/ecs-tasks/<id>/stopped  {"exit_code", "killed", "seconds"}: stopped
    GET  /_emulator/ecs-events        desired counts, task starts/stops, protection, tags,
                                      RDS stop/start requests and status changes
    POST /_emulator/rds-transition    {"seconds": s}: how long an RDS stop or start takes
                                      (rds_state.py; default 1 s)
    POST /_emulator/clock             {"advance": seconds}: moves protection expiry time
    POST /_emulator/codebuild-next-build  {"status", "phase", "seconds", "lines"}: how the
                                      next CodeBuild build ends (codebuild.py; once)
    POST /_emulator/function-hosts    {"function", "netns", "argv_prefix", "endpoint",
                                      "region" (optional)}: that VPC function's invocations
                                      run in network namespace /run/netns/<netns>, entered
                                      by argv_prefix + the bootstrap's command (each step
                                      execs the next), Runtime API on 127.0.0.1 there,
                                      AWS_ENDPOINT_URL = endpoint (run_lambda). 400 for a
                                      function without VpcConfig subnets, a missing netns,
                                      an argv_prefix that forks or lands elsewhere (it is
                                      run once to check), a loopback endpoint; 404 for an
                                      unknown function
    GET  /_emulator/function-hosts    {"function_hosts": [registrations], "unhosted": [VPC
                                      functions that ran without a host, outside any VPC]}
    DELETE /_emulator/function-hosts/<function>  forget it (name or ARN; ?region=): it
                                      runs in the emulator's own namespace again; 404 if
                                      none was registered
    """
    path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
    if path.startswith("/_emulator/cfn-response/"):
        return cfn_response_app(environ, start_response)
    try:
        if path.startswith("/_emulator/ecs-task-exit/") and method == "POST":
            with tasks.LOCK:
                tasks.TASK_EXIT["next"] = int(path.rsplit("/", 1)[-1])
            start_response("200 OK", [("Content-Length", "0")])
            return [b""]
        if path == "/_emulator/ecs-task-output" and method == "POST":
            lines = json.loads(_read_body(environ) or b"{}").get("lines")
            if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
                raise ValueError('the body must be {"lines": ["...", ...]}')
            with tasks.LOCK:
                tasks.TASK_OUTPUT["next"] = lines
            return _json_reply(start_response, "200 OK", {"lines": len(lines)})
        if path == "/_emulator/identities" and method == "POST":
            identity = REGISTRY.register(json.loads(_read_body(environ) or b"null"))
            return _json_reply(start_response, "200 OK", {
                "access_key_id": identity.access_key_id, "name": identity.name,
                "principal": identity.principal, "statements": len(identity.statements)})
        if path == "/_emulator/identities" and method == "GET":
            with REGISTRY.lock:
                listed = [{"access_key_id": i.access_key_id, "name": i.name,
                           "principal": i.principal} for i in REGISTRY.identities.values()]
            return _json_reply(start_response, "200 OK", {"identities": listed})
        if path == "/_emulator/calls" and method == "GET":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            since = int((query.get("since") or ["0"])[0])
            name = (query.get("identity") or [None])[0]
            with REGISTRY.lock:
                calls = [c for c in REGISTRY.calls if c["seq"] > since
                         and (name is None or c["identity"] == name)]
            return _json_reply(start_response, "200 OK", {"calls": calls})
        if path == "/_emulator/calls" and method == "DELETE":
            with REGISTRY.lock:
                REGISTRY.calls.clear()
            start_response("200 OK", [("Content-Length", "0")])
            return [b""]
        if path == "/_emulator/cfn-running" and method == "POST":
            body = json.loads(_read_body(environ) or b"{}")
            stack_id, logical_id = body["stack_id"], body["logical_id"]
            if not re.fullmatch(r"arn:[^:]+:cloudformation:[^:]+:\d{12}:stack/[^/]+/.+",
                                stack_id):
                raise ValueError("stack_id must be a stack ARN")
            with HARNESS_LOCK:
                HARNESS_RUNNING[(stack_id, logical_id)] = {
                    "type": body["resource_type"], "status": body["status"]}
            return _json_reply(start_response, "200 OK", {})
        if path == "/_emulator/fail-resource" and method == "POST":
            body = json.loads(_read_body(environ) or b"{}")
            if not isinstance(body.get("logical_id"), str) or not body["logical_id"]:
                raise ValueError('the body must be {"logical_id": "...", "reason": "..."}')
            with FAIL_NEXT_LOCK:
                FAIL_NEXT[body["logical_id"]] = str(body.get("reason") or
                                                    "failed on purpose (emulator hook)")
            return _json_reply(start_response, "200 OK", {"logical_id": body["logical_id"]})
        if path.startswith("/_emulator/ecs-") or path == "/_emulator/clock":
            found = _ecs_emulator_api(path, method, environ)
            if found is not None:
                return _json_reply(start_response, *found)
        if path == "/_emulator/rds-transition" and method == "POST":
            body = json.loads(_read_body(environ) or b"{}")
            return _json_reply(start_response, "200 OK",
                               {"seconds": rds_state.set_transition(body.get("seconds"))})
        if path == "/_emulator/codebuild-next-build" and method == "POST":
            ending = codebuild.set_next(json.loads(_read_body(environ) or b"{}"))
            return _json_reply(start_response, "200 OK", ending)
        if path.startswith("/_emulator/function-hosts"):
            found = _function_hosts_api(path, method, environ)
            if found is not None:
                return _json_reply(start_response, *found)
        if path == "/_emulator/recursion-stops" and method == "GET":
            return _json_reply(start_response, "200 OK", {"stops": list(RECURSION_STOPS)})
        if path == "/_emulator/schema" and method == "GET":
            with tasks.LOCK:
                return _json_reply(start_response, "200 OK", {"schema": dict(tasks.SCHEMA)})
    except ValueError as e:  # also json.JSONDecodeError and iam_eval.PolicyError
        return _json_reply(start_response, "400 Bad Request", {"error": str(e)})
    except KeyError as e:
        return _json_reply(start_response, "404 Not Found", {"error": str(e)})
    return _json_reply(start_response, "404 Not Found",
                       {"error": f"no emulator endpoint {method} {path}"})


_RECURSION_CONFIG = re.compile(r"/2024-08-31/functions/([^/]+)/recursion-config")


def recursion_config_api(environ, start_response, moto_app):
    """Gap: moto 5.2.5 has no Get/PutFunctionRecursionConfig
    (https://docs.aws.amazon.com/lambda/latest/api/API_PutFunctionRecursionConfig.html):
    RecursiveLoop "Allow" or "Terminate" (the default), read by recursion_stopped."""
    match = _RECURSION_CONFIG.fullmatch(environ["PATH_INFO"])
    if match is None:
        return moto_app(environ, start_response)
    name = re.sub(r"%3A", ":", match.group(1), flags=re.I)
    _, region, _ = authz.access_key_of(authz.wsgi_headers(environ), {})
    try:
        fn = lambda_backend(authz.DEFAULT_ACCOUNT, region or authz.DEFAULT_REGION
                            ).get_function(name)
    except Exception:
        body = {"Type": "User", "Message": f"Function not found: {name}"}
        start_response("404 Not Found", [("Content-Type", "application/json"),
                                         ("x-amzn-errortype", "ResourceNotFoundException")])
        return [json.dumps(body).encode()]
    if environ["REQUEST_METHOD"] == "PUT":
        wanted = json.loads(_read_body(environ) or b"{}").get("RecursiveLoop")
        if wanted not in ("Allow", "Terminate"):
            body = {"Type": "User", "Message": f"RecursiveLoop {wanted!r}: Allow or Terminate"}
            start_response("400 Bad Request", [
                ("Content-Type", "application/json"),
                ("x-amzn-errortype", "InvalidParameterValueException")])
            return [json.dumps(body).encode()]
        fn.recursive_loop = wanted
    return _json_reply(start_response, "200 OK",
                       {"RecursiveLoop": getattr(fn, "recursive_loop", "Terminate")})


def _ecs_backend(account: str = "123456789012", region: str | None = None):
    return ecs_backends[account][region or authz.DEFAULT_REGION]


def _ecs_emulator_api(path: str, method: str, environ):
    """The /_emulator/ endpoints of ecs_service.py: (status, body) or None."""
    parts = path.strip("/").split("/")
    if path == "/_emulator/ecs-services" and method == "POST":
        body = json.loads(_read_body(environ) or b"{}")
        if not body.get("cluster") or not body.get("service"):
            raise ValueError('the body must be {"cluster", "service", "stop_timeout"}')
        return "200 OK", ecs_service.manage(ecs_backends, body)
    if len(parts) == 4 and parts[1] == "ecs-services" and method == "GET":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        region = (query.get("region") or [None])[0]
        with ecs_service.LOCK:
            return "200 OK", ecs_service.service_state(_ecs_backend(region=region),
                                                       parts[2], parts[3])
    if len(parts) == 4 and parts[1] == "ecs-tasks" and method == "POST":
        body = json.loads(_read_body(environ) or b"{}")
        backend = _ecs_backend(region=body.get("region"))
        if parts[3] == "running":
            return "200 OK", ecs_service.task_running(backend, parts[2], body)
        if parts[3] == "stopped":
            return "200 OK", ecs_service.task_stopped(backend, parts[2], body)
    if path == "/_emulator/ecs-events" and method == "GET":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        since = int((query.get("since") or ["0"])[0])
        with ecs_service.LOCK:
            return "200 OK", {"events": [e for e in ecs_service.EVENTS if e["seq"] > since]}
    if path == "/_emulator/clock" and method == "POST":
        body = json.loads(_read_body(environ) or b"{}")
        with ecs_service.LOCK:
            ecs_service.CLOCK["offset"] += float(body.get("advance", 0))
            return "200 OK", {"offset": ecs_service.CLOCK["offset"]}
    return None


def _ecs_target(environ) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    prefix = "AmazonEC2ContainerServiceV20141113."
    return target[len(prefix):] if target.startswith(prefix) else ""


def ecs_api(environ, start_response, moto_app):
    """ECS operations moto 5.2.5 does not implement (after IAM, in front of moto):
    UpdateTaskProtection and GetTaskProtection (ecs_service.py)."""
    name = _ecs_target(environ)
    if name not in ("UpdateTaskProtection", "GetTaskProtection"):
        return moto_app(environ, start_response)
    body = json.loads(_read_body(environ) or b"{}")
    headers = authz.wsgi_headers(environ)
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    region = authz.access_key_of(headers, query)[1] or authz.DEFAULT_REGION
    backend = _ecs_backend(region=region)
    with ecs_service.LOCK:
        if name == "UpdateTaskProtection":
            status, reply = ecs_service.update_task_protection(backend, body)
        else:
            status, reply = ecs_service.get_task_protection(backend, body)
    data = json.dumps(reply, default=str).encode()
    start_response(f"{status} {'OK' if status == 200 else 'Bad Request'}", [
        ("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data))),
        ("x-amzn-RequestId", str(uuid.uuid4()))])
    return [data]


def _find_service_task(task_id: str):
    """(backend, task) of a task the emulator's ECS knows, in any region used."""
    for account, region, _, _ in list(ecs_service.MANAGED) or [
            ("123456789012", authz.DEFAULT_REGION, None, None)]:
        backend = ecs_backends[account][region]
        for tasks_of_cluster in backend.tasks.values():
            for arn, task in tasks_of_cluster.items():
                if arn.rsplit("/", 1)[-1] == task_id:
                    return backend, task
    return None, None


def agent_api(environ, start_response):
    """The ECS agent's endpoints of one task (ecs_service.py): ECS_AGENT_URI =
    <endpoint>/_ecs/agent/<task id>, ECS_CONTAINER_METADATA_URI_V4 =
    <endpoint>/_ecs/metadata/<task id>/<container>.

    PUT/GET <agent>/task-protection/v1/state are UpdateTaskProtection/GetTaskProtection
    made by the agent with the task role's credentials: authorized against that role and
    recorded. GET <metadata> and <metadata>/task serve task metadata v4 as a task on
    Fargate gets it. <metadata>/taskWithTags is 404: AWS documents it for tasks on EC2
    only ("Amazon ECS task metadata endpoint version 4"); the Fargate page ("Amazon ECS
    task metadata endpoint version 4 for tasks on Fargate") lists only the container
    path, /task, /stats and /task/stats, and these tasks are Fargate tasks. A task reads
    its tags with the ECS API instead (ListTagsForResource on its ARN, authorized
    against its task role by authz.py like every API call)."""
    path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
    parts = path.strip("/").split("/")
    if len(parts) < 3 or parts[1] not in ("agent", "metadata"):
        return _json_reply(start_response, "404 Not Found", {"error": f"no endpoint {path}"})
    backend, task = _find_service_task(parts[2])
    if task is None:
        return _json_reply(start_response, "404 Not Found",
                           {"error": f"no task {parts[2]} on this agent"})
    if parts[1] == "metadata":
        container = parts[3] if len(parts) > 3 else None
        rest = parts[4:]
        if rest == ["taskWithTags"]:
            return _json_reply(start_response, "404 Not Found", {
                "error": f"no metadata path {path}: taskWithTags is documented for tasks "
                         "on EC2 only, not on Fargate (use the ECS API's "
                         "ListTagsForResource on the task ARN)"})
        with ecs_service.LOCK:
            meta = ecs_service.task_metadata(backend, task, container)
            if rest == []:
                meta = meta["Containers"][0] if meta["Containers"] else {}
            elif rest != ["task"]:
                return _json_reply(start_response, "404 Not Found",
                                   {"error": f"no metadata path {path}"})
        return _json_reply(start_response, "200 OK", meta)
    if parts[3:] != ["task-protection", "v1", "state"] or method not in ("GET", "PUT"):
        return _json_reply(start_response, "404 Not Found", {"error": f"no endpoint {path}"})
    body = None
    if method == "PUT":
        body, problem = ecs_service.parse_agent_body(_read_body(environ))
        if problem:
            return _json_reply(start_response, "400 Bad Request",
                               ecs_service.agent_error(task.task_arn, "InvalidRequest",
                                                       problem))
    action = "ecs:UpdateTaskProtection" if method == "PUT" else "ecs:GetTaskProtection"
    key = ecs_service.TASK_INFO.get(task.task_arn, {}).get("task_role_key")
    identity = REGISTRY.get(key)
    if identity is None:
        # Fail closed: on ECS the agent would use the task role; a task without one
        # gets no credentials, and the emulator will not guess.
        return _json_reply(start_response, "500 Internal Server Error",
                           ecs_service.agent_error(task.task_arn, "ServerException",
                                                   "the task has no task role credentials "
                                                   "(the harness gave none)"))
    cluster_arn = (f"arn:aws:ecs:{task.region_name}:{backend.account_id}:cluster/"
                   f"{task.cluster_name}")
    context = {"ecs:cluster": cluster_arn}
    decision = iam_eval.evaluate(identity.statements, action, task.task_arn, context)
    REGISTRY.record(identity, REGISTRY.next_request(), "ecs",
                    action.split(":")[1] + " (ECS agent)", action, task.task_arn, context,
                    decision.allowed, decision.reason)
    if not decision.allowed:
        message = authz.denial_message(identity.principal, action, task.task_arn,
                                       decision.kind == "explicit-deny")
        return _json_reply(start_response, "400 Bad Request",
                           ecs_service.agent_error(task.task_arn, "AccessDeniedException",
                                                   message))
    with ecs_service.LOCK:
        if method == "PUT":
            _, failures = ecs_service.set_protection(
                backend, task.cluster_name, [task.task_arn], body["ProtectionEnabled"],
                body.get("ExpiresInMinutes"), "ECS agent")
            if failures:
                failure = failures[0]
                return _json_reply(start_response, "200 OK", {"failure": {
                    "Arn": failure["arn"], "Reason": failure["reason"],
                    "Detail": failure.get("detail")}})
        return _json_reply(start_response, "200 OK",
                           ecs_service.agent_protection_response(task.task_arn))


class MotoResolver(authz.Resolver):
    """Names in requests resolved against moto's state (authz.Resolver)."""

    def secret_arn(self, req, secret_id):
        secret = secretsmanager_backends[req.account][req.region].secrets.get(secret_id) \
            if secret_id else None
        if secret is not None:
            return secret.arn
        if secret_id.startswith("arn:"):
            return secret_id
        return f"arn:aws:secretsmanager:{req.region}:{req.account}:secret:{secret_id}"

    def task_definition(self, req, name):
        try:
            return ecs_backends[req.account][req.region].describe_task_definition(name)
        except Exception:
            return None


RESOLVER = MotoResolver()


def authorize(environ, start_response, moto_app):
    """IAM for registered identities, in front of moto (see authz.py for what each
    operation needs). Unregistered keys pass straight through."""
    headers = authz.wsgi_headers(environ)
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    key, region, service = authz.access_key_of(headers, query)
    identity = REGISTRY.get(key)
    if identity is None:
        return moto_app(environ, start_response)
    method = environ["REQUEST_METHOD"]
    # An object upload's body is the object: never buffered; everything else is small.
    streaming = service == "s3" and method == "PUT"
    body = b"" if streaming else _read_body(environ)
    req = authz.Request(method, environ["PATH_INFO"], query, headers, body, key,
                        region or authz.DEFAULT_REGION, service)
    op = authz.classify(req, RESOLVER)
    request_no = REGISTRY.next_request()

    def deny(action, resource, message):
        status, reply_headers, reply = authz.denial_response(op, method, message)
        start_response(status, reply_headers + [("Content-Length", str(len(reply)))])
        return [reply]

    if op.free:
        REGISTRY.record(identity, request_no, op.service, op.name, f"{op.service}:{op.name}",
                        "*", {}, True, "needs no permission (AWS documents none)")
        if op.service == "sts" and op.name == "GetCallerIdentity":
            status, reply_headers, reply = authz.caller_identity_response(
                op, identity, req.account)
            start_response(status, reply_headers + [("Content-Length", str(len(reply)))])
            return [reply]
        return moto_app(environ, start_response)
    if not op.modelled:
        action = f"{op.service}:{op.name}"
        reason = (f"operation {op.service} {op.name} is not modelled by the emulator, so it "
                  "is denied (fail closed); model it in tests/aws_emulator/authz.py")
        REGISTRY.record(identity, request_no, op.service, op.name, action, "", {}, False,
                        reason)
        return deny(action, "", f"User: {identity.principal} is not authorized to perform: "
                                f"{action} ({reason})")
    first_denial = None
    for check in op.checks:
        decision = iam_eval.evaluate(identity.statements, check.action, check.resource,
                                     check.context)
        REGISTRY.record(identity, request_no, op.service, op.name, check.action,
                        check.resource, check.context, decision.allowed, decision.reason)
        if not decision.allowed and first_denial is None:
            first_denial = (check, decision)
    if first_denial:
        check, decision = first_denial
        return deny(check.action, check.resource, authz.denial_message(
            identity.principal, check.action, check.resource,
            decision.kind == "explicit-deny"))
    if op.service == "s3" and op.name in ("GetObject", "HeadObject"):
        return _missing_key_rule(environ, start_response, moto_app, req, op, identity,
                                 request_no)
    return moto_app(environ, start_response)


def _missing_key_rule(environ, start_response, moto_app, req, op, identity, request_no):
    """S3: "If the object you request doesn't exist, the error that Amazon S3 returns
    depends on whether you also have the s3:ListBucket permission": 404 with it, 403
    AccessDenied without (Permissions sections of
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html and
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html). The ListBucket
    check has no s3:prefix in its context: the request has no prefix parameter."""
    captured = {}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return lambda data: captured.setdefault("written", []).append(data)

    result = moto_app(environ, capture)
    try:
        chunks = captured.get("written", []) + list(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    body = b"".join(chunks)
    missing_key = captured["status"].startswith("404") and (
        b"NoSuchKey" in body or (req.method == "HEAD" and op.s3_bucket in
                                 s3_backends[req.account]["aws"].buckets))
    if missing_key:
        bucket_arn = f"arn:aws:s3:::{op.s3_bucket}"
        decision = iam_eval.evaluate(identity.statements, "s3:ListBucket", bucket_arn, {})
        REGISTRY.record(identity, request_no, "s3", f"{op.name} (missing key)",
                        "s3:ListBucket", bucket_arn, {}, decision.allowed,
                        "the key does not exist; S3 answers 404 only to a caller allowed "
                        f"s3:ListBucket on the bucket, else 403: {decision.reason}")
        if not decision.allowed:
            status, headers, reply = authz.denial_response(op, req.method, "Access Denied")
            start_response(status, headers + [("Content-Length", str(len(reply)))])
            return [reply]
    start_response(captured["status"], captured["headers"])
    return [body]


ORIGINAL = {}


def apply_patches() -> None:
    """Install every patch above into moto."""
    import object_versions  # bucket versioning, Code.S3ObjectVersion (object_versions.py)
    object_versions.install()
    rds_state.install()  # RDS stop/start through stopping/starting (rds_state.py)
    codebuild.install()  # builds that run, fail, log and push (codebuild.py)
    stream_mappings.install(run_lambda, REGISTRY)  # DynamoDB streams to Lambda
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.ecs.responses import EC2ContainerServiceResponse
    ORIGINAL["describe_tasks"] = EC2ContainerServiceBackend.describe_tasks
    ORIGINAL["run_task"] = EC2ContainerServiceBackend.run_task
    ORIGINAL["run_task_response"] = EC2ContainerServiceResponse.run_task
    EC2ContainerServiceBackend.run_task = run_task
    from moto.ec2.models.subnets import SubnetRouteTableAssociation
    SubnetRouteTableAssociation.create_from_cloudformation_json = classmethod(
        subnet_association_create)
    from moto.iam.models import Role
    ORIGINAL["role_update"] = Role.update_from_cloudformation_json
    Role.update_from_cloudformation_json = classmethod(role_update)
    from moto.ecs.models import TaskDefinition
    TaskDefinition.create_from_cloudformation_json = classmethod(task_definition_create)
    TaskDefinition.update_from_cloudformation_json = classmethod(task_definition_update)
    EC2ContainerServiceResponse.run_task = run_task_response
    ORIGINAL["get_stack_from_s3_url"] = cfn_utils.get_stack_from_s3_url
    cfn_utils.get_stack_from_s3_url = get_stack_from_s3_url
    cfn_responses.get_stack_from_s3_url = get_stack_from_s3_url
    cfn_models.get_stack_from_s3_url = get_stack_from_s3_url
    EC2ContainerServiceBackend.describe_tasks = describe_tasks
    ORIGINAL["list_tasks"] = EC2ContainerServiceBackend.list_tasks
    EC2ContainerServiceBackend.list_tasks = list_tasks
    ORIGINAL["update_service"] = EC2ContainerServiceBackend.update_service
    EC2ContainerServiceBackend.update_service = update_service
    ORIGINAL["tag_resource"] = EC2ContainerServiceBackend.tag_resource
    EC2ContainerServiceBackend.tag_resource = tag_resource
    ORIGINAL["untag_resource"] = EC2ContainerServiceBackend.untag_resource
    EC2ContainerServiceBackend.untag_resource = untag_resource
    EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(
        task_resource_requirements)
    lambda_models.LambdaFunction.invoke = lambda_invoke
    lambda_backend_class = lambda_models.LambdaBackend
    ORIGINAL["put_event_invoke_config"] = lambda_backend_class.put_function_event_invoke_config
    lambda_backend_class.put_function_event_invoke_config = put_event_invoke_config
    lambda_backend_class.update_function_event_invoke_config = update_event_invoke_config
    from moto.logs.models import LogEvent, LogGroup as LogsGroup
    LogEvent.__init__ = log_event_init
    LogsGroup.filter_log_events = log_group_filter_log_events
    function = lambda_models.LambdaFunction
    ORIGINAL["lambda_init"] = function.__init__
    function.__init__ = lambda_function_init
    ORIGINAL["lambda_create"] = function.create_from_cloudformation_json
    function.create_from_cloudformation_json = classmethod(lambda_function_create)
    ORIGINAL["lambda_update"] = function.update_from_cloudformation_json
    function.update_from_cloudformation_json = classmethod(lambda_function_update)
    ORIGINAL["lambda_update_code"] = function.update_function_code
    function.update_function_code = lambda_update_function_code
    # Gap: a network interface in a VPC without DNS hostnames has no private_dns_name, and
    # moto's RunTask (awsvpc) then fails with an AttributeError; AWS just leaves it empty.
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface
    NetworkInterface.private_dns_name = None
    from moto.logs.models import LogGroup
    ORIGINAL["log_group_attribute"] = LogGroup.get_cfn_attribute
    LogGroup.get_cfn_attribute = log_group_attribute
    CustomModel.get_cfn_attribute = custom_get_attribute
    parsing.resource_class_from_type = resource_class_from_type
    parsing.clean_json = clean_json
    parsing.ResourceMap.__getitem__ = resource_map_getitem
    parsing.ResourceMap.validate_outputs = lambda self: None  # checked when outputs resolve
    for module in (cfn_models, cfn_responses, cfn_utils):
        module.yaml_tag_constructor = yaml_tag_constructor
    backend = cfn_models.CloudFormationBackend
    backend.create_stack = create_stack
    backend.execute_change_set = execute_change_set
    backend.create_change_set = create_change_set
    backend.describe_change_set = describe_change_set
    backend.delete_change_set = delete_change_set
    backend.delete_stack = delete_stack
    cfn_responses.CloudFormationResponse.describe_stack_resource = (
        describe_stack_resource_response)
    cfn_responses.CloudFormationResponse.describe_change_set = describe_change_set_response
    cfn_responses.CloudFormationResponse.delete_change_set = delete_change_set_response
    cfn_responses.CloudFormationResponse.update_termination_protection = (
        update_termination_protection_response)
    stack = cfn_models.Stack
    stack.update = stack_update
    stack.outputs = property(lambda self: getattr(self, "emu_outputs", None))
    stack.exports = property(lambda self: getattr(self, "emu_exports", []))
    stack.stack_resources = property(lambda self: [
        self.resource_map._parsed_resources[k] for k in _state(self)
        if k in self.resource_map._parsed_resources])


# --------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------


def main() -> None:
    global ENDPOINT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; an address inside a "
                             "network namespace for the e2e; 0.0.0.0 for all)")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    args = parser.parse_args()
    try:
        ASYNC_RETRY_DELAYS[:] = retry_delays_from(os.environ.get(RETRY_DELAYS_ENV))
        TIMEOUT_CAP[0] = timeout_cap_from(os.environ.get(TIMEOUT_CAP_ENV))
        stream_mappings.poll_interval_from(os.environ.get(stream_mappings.POLL_ENV))
    except ValueError as e:
        parser.error(str(e))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    apply_patches()
    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path.startswith("/_emulator/"):
            return emulator_api(environ, start_response)
        if path.startswith("/_ecs/"):
            return agent_api(environ, start_response)
        if path == "/moto-api/reset":  # the emulator's own state goes with moto's
            REGISTRY.reset()
            with HARNESS_LOCK:
                HARNESS_RUNNING.clear()
            tasks.reset()
            ecs_service.reset()
            rds_state.reset()
            codebuild.reset()
            LAMBDA_EPOCH[0] += 1  # pending retries of asynchronous invocations are dropped
            stream_mappings.reset()  # the event source mappings' pollers stop
            RECURSION_STOPS.clear()
            reset_function_hosts()
            with FAIL_NEXT_LOCK:
                FAIL_NEXT.clear()
            return moto_app(environ, start_response)
        return authorize(environ, start_response, lambda e, s: ecs_api(
            e, s, lambda e2, s2: recursion_config_api(e2, s2, moto_app)))

    server = make_server(args.host, args.port, app, threaded=True,
                         request_handler=MotoRequestHandler)
    port = server.server_port
    # The address the Lambdas (run here, in the same network namespace) and ResponseURLs
    # use: the bound one, or loopback when bound to every address.
    reach = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    reach = "[::1]" if reach == "::" else (f"[{reach}]" if ":" in reach else reach)
    ENDPOINT = f"http://{reach}:{port}"
    os.environ["MOTO_PORT"] = str(port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    print(f"READY {port}", flush=True)
    try:
        server.serve_forever()
    finally:
        for proc in list(LIVE_PROCESSES):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        server.server_close()


if __name__ == "__main__":
    main()
