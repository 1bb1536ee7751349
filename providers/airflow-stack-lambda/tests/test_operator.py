"""The operator and its trigger with fake Lambda and CloudWatch Logs clients and a fake
clock: the correlation ID per try, synchronous errors, deferral, the trigger round trip."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from conftest import (
    T0,
    FakeAsyncClock,
    FakeAsyncLogs,
    FakeClock,
    FakeLambda,
    FakeLogs,
    client_error,
    record,
)

from airflow_stack_lambda.correlation import MAX_LENGTH, PAYLOAD_KEY, make_correlation_id
from airflow_stack_lambda.exceptions import LambdaFunctionError, LambdaInvocationTimeout
from airflow_stack_lambda.follower import FollowSpec
from airflow_stack_lambda.get_provider_info import get_provider_info
from airflow_stack_lambda.operators import TrackedLambdaInvokeOperator
from airflow_stack_lambda.triggers import TrackedLambdaTrigger

PACKAGE = Path(__file__).resolve().parents[1]


def context(try_number: int = 1, map_index: int = -1) -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id="etl",
        task_id="load",
        run_id="manual__2026-12-01T17:00:00+00:00",
        map_index=map_index,
        try_number=try_number,
    )
    return {"ti": ti}


class Harness:
    """An operator wired to fakes, collecting the lines it copies to the task log."""

    def __init__(self, clock: FakeClock, **kwargs: Any) -> None:
        self.clock = clock
        self.logs = FakeLogs(clock)
        self.fn = FakeLambda(self.logs, clock)
        self.lines: list[str] = []
        self.op = TrackedLambdaInvokeOperator(
            task_id="load",
            function_name="fn",
            payload={"table": "t"},
            poll_interval=5,
            grace_period=10,
            **kwargs,
        )
        self.op.clock = clock
        self.client_timeouts: list[float | None] = []

        def lambda_client(call_timeout_s: float | None = None) -> FakeLambda:
            self.client_timeouts.append(call_timeout_s)
            return self.fn

        self.op.lambda_client = lambda_client  # type: ignore[method-assign]
        self.op.logs_client = lambda: self.logs  # type: ignore[method-assign]
        self.op._copy_line = self.lines.append  # type: ignore[method-assign]

    def succeed_after(self, seconds: float, result: Any) -> None:
        def behaviour(cid: str, payload: dict[str, Any], started: int) -> None:
            self.logs.put(started + 100, record(cid, "start"))
            self.logs.put(started + 200, record(cid, message=f"table {payload['table']}"))
            self.logs.put(started + int(seconds * 1000), record(cid, "end", result=result))

        self.fn.behaviour = behaviour


def test_each_try_gets_its_own_correlation_id_and_only_its_own_lines(clock: FakeClock) -> None:
    h = Harness(clock, deferrable=False)
    h.succeed_after(3, {"rows": 1})

    assert h.op.execute(context(try_number=1)) == {"rows": 1}
    first_lines = list(h.lines)
    h.lines.clear()
    assert h.op.execute(context(try_number=2)) == {"rows": 1}

    ids = [inv["payload"][PAYLOAD_KEY] for inv in h.fn.invocations]
    assert ids[0] != ids[1]
    assert ".t1." in ids[0] and ".t2." in ids[1] and ids[0].startswith("etl.load.manual__")
    assert inv_payload_kept(h)
    assert all(ids[0] in line for line in first_lines) and len(first_lines) == 3
    assert all(ids[1] in line and ids[0] not in line for line in h.lines) and len(h.lines) == 3


def inv_payload_kept(h: Harness) -> bool:
    return all(inv["payload"]["table"] == "t" for inv in h.fn.invocations)


def test_correlation_ids_are_bounded_and_filter_safe() -> None:
    cid = make_correlation_id("d" * 300, 't"ask with spaces' * 20, "r:u+n" * 50, 123456, 999)
    assert len(cid) <= MAX_LENGTH
    assert all(c.isalnum() or c in "._-" for c in cid)
    assert make_correlation_id("d", "t", "r", -1, 1) != make_correlation_id("d", "t", "r", -1, 1)


def test_a_synchronous_function_error_shows_the_error_record_with_its_stack(
    clock: FakeClock,
) -> None:
    h = Harness(clock, deferrable=False, invocation_type="RequestResponse")

    def behaviour(cid: str, payload: dict[str, Any], started: int) -> dict[str, Any]:
        h.logs.put(started + 100, record(cid, "start"))
        h.logs.put(
            started + 900,
            record(
                cid,
                "error",
                errorMessage="table t is locked",
                errorType="LoadError",
                stackTrace=["load failed", "caused by: table t is locked"],
            ),
        )
        clock.now += 1000  # the synchronous call lasts as long as the function
        body = {"errorMessage": "table t is locked", "errorType": "LoadError"}
        return {"FunctionError": "Unhandled", "body": json.dumps(body).encode()}

    h.fn.behaviour = behaviour

    with pytest.raises(LambdaFunctionError) as failure:
        h.op.execute(context())

    text = str(failure.value)
    assert "LoadError: table t is locked" in text
    assert "caused by: table t is locked" in text  # the stack came from the log record
    assert len(h.lines) == 2


def test_a_synchronous_function_error_without_lines_reports_lambdas_error(
    clock: FakeClock,
) -> None:
    h = Harness(clock, deferrable=False, invocation_type="RequestResponse", sync_log_wait=20)
    h.fn.behaviour = lambda cid, payload, started: {
        "FunctionError": "Unhandled",
        "body": b'{"errorMessage": "Task timed out after 30.00 seconds", '
        b'"errorType": "Sandbox.Timedout"}',
    }
    with pytest.raises(LambdaFunctionError, match="Sandbox.Timedout: Task timed out"):
        h.op.execute(context())
    assert clock.now == T0 + 20_000  # waited sync_log_wait for lines, no longer


def test_a_synchronous_success_returns_the_response_payload(clock: FakeClock) -> None:
    h = Harness(clock, deferrable=False, invocation_type="RequestResponse")

    def behaviour(cid: str, payload: dict[str, Any], started: int) -> dict[str, Any]:
        h.logs.put(started + 100, record(cid, "end", result={"n": 2}))
        return {"body": b'{"n": 2}'}

    h.fn.behaviour = behaviour
    assert h.op.execute(context()) == {"n": 2}
    # The call itself ran on a client that waits out the function's 30 s timeout.
    assert h.client_timeouts == [None, 90.0]


def test_no_end_marker_fails_at_the_functions_timeout_plus_grace(clock: FakeClock) -> None:
    h = Harness(clock, deferrable=False)
    h.fn.behaviour = lambda cid, payload, started: h.logs.put(started + 100, record(cid, "start"))
    with pytest.raises(LambdaInvocationTimeout, match="timeout 30s plus 10s grace"):
        h.op.execute(context())
    assert clock.now == T0 + 100 + 40_000


def test_event_mode_defers_and_the_trigger_reports_the_outcome(clock: FakeClock) -> None:
    h = Harness(clock)  # deferrable by default, Event by default
    h.succeed_after(4, "loaded")

    with pytest.raises(TaskDeferred) as deferred:
        h.op.execute(context())

    assert deferred.value.method_name == "execute_complete"
    trigger = deferred.value.trigger
    assert isinstance(trigger, TrackedLambdaTrigger)
    assert h.lines == []  # nothing followed in the worker
    assert h.fn.invocations[0]["InvocationType"] == "Event"

    # The triggerer rebuilds the trigger from its serialisation: only JSON goes across.
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_stack_lambda.triggers.TrackedLambdaTrigger"
    kwargs = json.loads(json.dumps(kwargs))
    assert (
        kwargs["spec"]["timeout_ms"] == 30_000 and kwargs["spec"]["log_group"] == "/aws/lambda/fn"
    )
    rebuilt = TrackedLambdaTrigger(**kwargs)

    async_clock = FakeAsyncClock(clock.now)
    async_logs = FakeAsyncLogs(h.logs)
    h.logs.clock = async_clock
    rebuilt.clock = async_clock

    async def fake_client() -> FakeAsyncLogs:
        return async_logs

    rebuilt.logs_client = fake_client  # type: ignore[method-assign]
    copied: list[str] = []
    rebuilt._copy_line = copied.append  # type: ignore[method-assign]

    async def first_event() -> Any:
        async for event in rebuilt.run():
            return event

    event = asyncio.run(first_event())

    assert len(copied) == 3
    assert h.op.execute_complete(context(), event.payload) == "loaded"


def test_execute_complete_raises_the_functions_error() -> None:
    op = TrackedLambdaInvokeOperator(task_id="t", function_name="fn")
    event = {
        "function_name": "fn",
        "correlation_id": "c",
        "outcome": {
            "status": "error",
            "error": {"errorMessage": "boom", "errorType": "E", "stackTrace": ["f1"]},
        },
    }
    with pytest.raises(LambdaFunctionError, match="E: boom") as failure:
        op.execute_complete({}, event)
    assert "  f1" in str(failure.value)


def test_given_timeout_and_log_group_skip_get_function_configuration(clock: FakeClock) -> None:
    h = Harness(clock, deferrable=False, function_timeout=5, log_group="/aws/lambda/fn")
    h.succeed_after(1, None)
    h.op.execute(context())
    assert h.fn.config_calls == 0


def test_a_payload_that_is_not_an_object_is_refused(clock: FakeClock) -> None:
    h = Harness(clock, deferrable=False)
    h.op.payload = "[1, 2]"
    with pytest.raises(TypeError, match="JSON object"):
        h.op.execute(context())


def test_provider_metadata_matches_airflows_schema_and_entry_point() -> None:
    import airflow
    import jsonschema

    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    jsonschema.validate(get_provider_info(), json.loads(schema_path.read_text()))
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((PACKAGE / "pyproject.toml").read_text())
    entry = pyproject["project"]["entry-points"]["apache_airflow_provider"]["provider_info"]
    assert entry == "airflow_stack_lambda.get_provider_info:get_provider_info"


def test_an_aws_error_while_following_fails_the_task_with_awss_words(clock: FakeClock) -> None:
    logs = FakeLogs(clock)
    logs.errors = [client_error("AccessDeniedException")]
    spec = FollowSpec(
        function_name="fn",
        log_group="/aws/lambda/fn",
        correlation_id="c",
        invoked_at_ms=T0,
        timeout_ms=1000,
    )
    trigger = TrackedLambdaTrigger(spec=spec.to_json())
    trigger.clock = FakeAsyncClock()

    async def fake_client() -> FakeAsyncLogs:
        return FakeAsyncLogs(logs)

    trigger.logs_client = fake_client  # type: ignore[method-assign]

    async def first_event() -> Any:
        async for event in trigger.run():
            return event

    event = asyncio.run(first_event())
    assert event.payload["outcome"]["status"] == "follow_error"
    op = TrackedLambdaInvokeOperator(task_id="t", function_name="fn")
    with pytest.raises(AirflowException, match="AccessDeniedException"):
        op.execute_complete({}, event.payload)


def test_a_synchronous_call_is_not_cut_at_botocores_read_timeout_nor_retried() -> None:
    op = TrackedLambdaInvokeOperator(
        task_id="t", function_name="fn", region_name="eu-west-1", aws_conn_id=None
    )
    config = op.lambda_client(call_timeout_s=960).meta.config
    assert config.read_timeout == 960
    assert config.retries["total_max_attempts"] == 1
    mine = TrackedLambdaInvokeOperator(
        task_id="t",
        function_name="fn",
        region_name="eu-west-1",
        aws_conn_id=None,
        botocore_config={"read_timeout": 5},
    )
    assert mine.lambda_client(call_timeout_s=960).meta.config.read_timeout == 5
