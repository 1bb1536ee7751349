"""Fakes for the follower and operator tests: a clock that only moves when slept on, and a
CloudWatch Logs that makes each event searchable at a chosen time (ingestion delay)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

T0 = 1_800_000_000_000  # an arbitrary wall-clock instant, in ms


class FakeClock:
    """Starts at T0; ``sleep`` advances it instantly and is recorded."""

    def __init__(self, now_ms: int = T0) -> None:
        self.now = now_ms
        self.sleeps: list[float] = []

    def now_ms(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, seconds
        self.sleeps.append(seconds)
        self.now += int(seconds * 1000)


class FakeAsyncClock(FakeClock):
    async def sleep(self, seconds: float) -> None:  # type: ignore[override]
        FakeClock.sleep(self, seconds)


@dataclass
class StoredEvent:
    event_id: str
    timestamp: int
    message: str
    visible_at: int
    stream: str


class FakeLogs:
    """``filter_log_events`` over one log group, as CloudWatch Logs answers it: events whose
    timestamp is at or after ``startTime``, that contain the quoted term, and that have been
    ingested by now (``visible_at``), sorted by timestamp and then in the order they were
    put (AWS: "sorted by event timestamp, the timestamp when the event was ingested by
    CloudWatch Logs, and the ID of the PutLogEvents request"), ``page_size`` per page."""

    def __init__(self, clock: FakeClock, log_group: str = "/aws/lambda/fn", page_size: int = 3):
        self.clock = clock
        self.log_group = log_group
        self.page_size = page_size
        self.events: list[StoredEvent] = []
        self.calls: list[dict[str, Any]] = []
        self.errors: list[Exception] = []  # raised by the next calls, in order
        self.empty_first_page = False

    def put(
        self,
        timestamp: int,
        message: str,
        visible_at: int | None = None,
        stream: str = "2026/12/01/[$LATEST]abc",
        event_id: str | None = None,
    ) -> None:
        self.events.append(
            StoredEvent(
                event_id=event_id or f"{len(self.events):06d}",
                timestamp=timestamp,
                message=message,
                visible_at=timestamp + 500 if visible_at is None else visible_at,
                stream=stream,
            )
        )

    def filter_log_events(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(kw)
        if self.errors:
            raise self.errors.pop(0)
        assert kw["logGroupName"] == self.log_group
        pattern = kw["filterPattern"]
        assert pattern.startswith('"') and pattern.endswith('"'), pattern
        term = pattern[1:-1]
        token = kw.get("nextToken")
        if self.empty_first_page and token is None:
            # The API may answer a page with no events and a token while more follow.
            return {"events": [], "nextToken": "0"}
        now = self.clock.now_ms()
        matching = sorted(
            (
                e
                for e in self.events
                if e.visible_at <= now and e.timestamp >= kw["startTime"] and term in e.message
            ),
            key=lambda e: e.timestamp,  # stable: ties stay in the order they were put
        )
        offset = int(token or 0)
        page = matching[offset : offset + self.page_size]
        answer: dict[str, Any] = {
            "events": [
                {
                    "eventId": e.event_id,
                    "timestamp": e.timestamp,
                    "message": e.message,
                    "logStreamName": e.stream,
                    "ingestionTime": e.visible_at,
                }
                for e in page
            ]
        }
        if offset + self.page_size < len(matching):
            answer["nextToken"] = str(offset + self.page_size)
        return answer


class FakeAsyncLogs:
    """The same answers through an awaitable call and an async context manager, as an
    aiobotocore client gives them."""

    def __init__(self, logs: FakeLogs) -> None:
        self.logs = logs

    async def filter_log_events(self, **kw: Any) -> dict[str, Any]:
        return self.logs.filter_log_events(**kw)

    async def __aenter__(self) -> FakeAsyncLogs:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "FilterLogEvents")


def record(correlation_id: str, marker: str | None = None, **fields: Any) -> str:
    """One line of the record format."""
    obj: dict[str, Any] = {"level": "INFO", "correlation_id": correlation_id, **fields}
    if marker:
        obj["airflow_tracking"] = marker
    return json.dumps(obj)


class FakeLambda:
    """A Lambda whose function runs at invoke time and writes its lines into ``logs``,
    as the behaviour it was given decides from the payload."""

    def __init__(self, logs: FakeLogs, clock: FakeClock, timeout_s: int = 30) -> None:
        self.logs = logs
        self.clock = clock
        self.timeout_s = timeout_s
        self.invocations: list[dict[str, Any]] = []
        self.config_calls = 0
        self.behaviour: Any = None  # (correlation_id, payload, started_ms) -> response extras

    def get_function_configuration(self, **kw: Any) -> dict[str, Any]:
        self.config_calls += 1
        return {
            "FunctionName": "fn",
            "Timeout": self.timeout_s,
            "LoggingConfig": {"LogGroup": self.logs.log_group, "LogFormat": "JSON"},
        }

    def invoke(self, **kw: Any) -> dict[str, Any]:
        payload = json.loads(kw["Payload"])
        self.invocations.append({**kw, "payload": payload})
        started = self.clock.now_ms()
        extra = self.behaviour(payload["airflow_correlation_id"], payload, started) or {}
        if kw["InvocationType"] == "Event":
            return {"StatusCode": 202, "Payload": io.BytesIO(b"")}
        body = extra.pop("body", b"null")
        return {"StatusCode": 200, "Payload": io.BytesIO(body), **extra}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def async_clock() -> FakeAsyncClock:
    return FakeAsyncClock()
