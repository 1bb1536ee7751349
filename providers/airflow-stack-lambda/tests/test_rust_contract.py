"""The record format across the two languages: the real example function
(crates/tracked-example, built with crates/lambda-tracking) runs under a local stand-in of
the Lambda Runtime API, and the follower reads what it printed.

The stand-in implements the three calls a runtime client makes (the Lambda Runtime API:
``GET /2018-06-01/runtime/invocation/next``, ``POST .../{request id}/response`` and
``.../error``). Lines the function prints become CloudWatch events in the fake log group.

Needs the built binary: ``cargo build -p airflow-tracked-example``, then
``AIRFLOW_STACK_TRACKED_EXAMPLE=<target dir>/debug/airflow-tracked-example-bootstrap``.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, FakeClock, FakeLogs

from airflow_stack_lambda.correlation import PAYLOAD_KEY, make_correlation_id
from airflow_stack_lambda.follower import FollowSpec, Outcome, follow

BINARY = os.environ.get("AIRFLOW_STACK_TRACKED_EXAMPLE", "")


@pytest.fixture(autouse=True)
def _example_binary() -> None:
    """The built example function; missing, the test fails (never skips): the test
    command (tests/run-all.sh) builds it and sets the variable."""
    assert BINARY and Path(BINARY).is_file(), (
        "set AIRFLOW_STACK_TRACKED_EXAMPLE to the built airflow-tracked-example-bootstrap "
        "(cargo build -p airflow-tracked-example); tests/run-all.sh does")
API = "/2018-06-01/runtime/invocation/"


class RuntimeApi:
    """Hands out queued invocations and collects the function's answers."""

    def __init__(self) -> None:
        self.pending: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.answers: dict[str, tuple[str, Any]] = {}
        self.answered = threading.Condition()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                assert self.path == API + "next", self.path
                request_id, body = api.pending.get()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(T0 + 900_000))
                self.send_header(
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:eu-west-1:123456789012:function:example",
                )
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                request_id, kind = self.path[len(API) :].split("/")
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with api.answered:
                    api.answers[request_id] = (kind, json.loads(body) if body else None)
                    api.answered.notify_all()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def invoke(self, payload: dict[str, Any], timeout: float = 30) -> tuple[str, Any]:
        request_id = str(uuid.uuid4())
        self.pending.put((request_id, json.dumps(payload).encode()))
        with self.answered:
            assert self.answered.wait_for(lambda: request_id in self.answers, timeout), (
                f"no answer to {payload}"
            )
            return self.answers[request_id]


@pytest.fixture(scope="module")
def function() -> Iterator[tuple[RuntimeApi, list[str]]]:
    api = RuntimeApi()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "example",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/01/[$LATEST]contract",
    }
    process = subprocess.Popen([BINARY], env=env, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(
        target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True
    )
    reader.start()
    try:
        yield api, lines
    finally:
        process.terminate()
        process.wait(timeout=10)
        api.server.shutdown()


def follow_printed(lines: list[str], correlation_id: str) -> tuple[Outcome, list[str]]:
    """The follower's outcome over what the function printed, as CloudWatch would hold it."""
    clock = FakeClock()
    logs = FakeLogs(clock)
    for i, line in enumerate(list(lines)):
        logs.put(T0 + i, line)
    spec = FollowSpec(
        function_name="example",
        log_group="/aws/lambda/fn",
        correlation_id=correlation_id,
        invoked_at_ms=T0,
        timeout_ms=30_000,
        grace_ms=10_000,
        poll_interval_s=5,
    )
    copied: list[str] = []
    return follow(logs, spec, clock, copied.append), copied


def new_id(try_number: int) -> str:
    return make_correlation_id("contract", "example", "manual__1", -1, try_number)


def settle(lines: list[str], correlation_id: str, marker: str) -> None:
    """Waits until the function's last line for this invocation was read from its stdout."""
    deadline = threading.Event()
    for _ in range(100):
        if any(
            correlation_id in line and f'"airflow_tracking":"{marker}"' in line
            for line in list(lines)
        ):
            return
        deadline.wait(0.05)
    raise AssertionError(f"no {marker} line for {correlation_id} in {lines}")


def test_success_with_lines_and_a_result(function: tuple[RuntimeApi, list[str]]) -> None:
    api, lines = function
    cid = new_id(1)
    kind, body = api.invoke({PAYLOAD_KEY: cid, "lines": 3, "result": {"rows": 3}})
    settle(lines, cid, "end")

    outcome, copied = follow_printed(lines, cid)

    assert (kind, body) == ("response", {"rows": 3})
    assert outcome.status == "success" and outcome.result == {"rows": 3}
    assert len(copied) == 5  # start, three lines, end
    assert all(json.loads(line)["correlation_id"] == cid for line in copied)


def test_failure_gives_the_exact_message_and_chain(
    function: tuple[RuntimeApi, list[str]],
) -> None:
    api, lines = function
    cid = new_id(2)
    kind, body = api.invoke(
        {
            PAYLOAD_KEY: cid,
            "action": "fail",
            "message": "table orders is locked",
            "cause": "lock held by 42",
        }
    )
    settle(lines, cid, "error")

    outcome, _ = follow_printed(lines, cid)

    assert kind == "error" and body == {
        "errorType": "ExampleError",
        "errorMessage": "table orders is locked",
    }
    assert outcome.status == "error" and outcome.error is not None
    assert outcome.error.error_message == "table orders is locked"
    assert outcome.error.error_type == "ExampleError"
    assert outcome.error.stack_trace == ("table orders is locked", "caused by: lock held by 42")


def test_a_panic_is_an_error_record(function: tuple[RuntimeApi, list[str]]) -> None:
    api, lines = function
    cid = new_id(3)
    kind, _ = api.invoke({PAYLOAD_KEY: cid, "action": "panic", "message": "index 7 of 3"})
    settle(lines, cid, "error")
    outcome, _ = follow_printed(lines, cid)
    assert kind == "error"
    assert outcome.error is not None and outcome.error.error_message == "index 7 of 3"


def test_each_invocation_is_followed_apart(function: tuple[RuntimeApi, list[str]]) -> None:
    api, lines = function
    first, second = new_id(4), new_id(5)
    api.invoke({PAYLOAD_KEY: first, "lines": 2, "result": 1})
    api.invoke({PAYLOAD_KEY: second, "lines": 1, "result": 2})
    settle(lines, second, "end")
    one, copied_one = follow_printed(lines, first)
    two, copied_two = follow_printed(lines, second)
    assert (one.result, two.result) == (1, 2)
    assert (len(copied_one), len(copied_two)) == (4, 3)
