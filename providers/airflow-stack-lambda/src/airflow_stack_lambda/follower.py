"""Following one invocation's log lines in CloudWatch Logs, until it ends or times out.

:class:`LogFollower` is the pure part: it decides what to ask ``FilterLogEvents`` for, what
the answers mean and when the invocation's outcome is known, and does no I/O. The two
drivers :func:`follow` (boto3, the worker's non-deferrable mode) and :func:`follow_async`
(aiobotocore, the triggerer) run the same follower with a client and a clock they are given.

Why a window and a set of event ids: CloudWatch Logs makes an event searchable some time
after the function wrote it (ingestion delay), and events of one invocation can become
visible out of timestamp order. Each polling pass therefore starts ``lookback`` before the
newest event already seen, not after it, and an event seen in an earlier pass is recognised
by its ``eventId`` and not copied twice. ``FilterLogEvents`` can also return a page with no
events and a ``nextToken`` while more events follow; a pass reads pages until there is no
token (FilterLogEvents in the CloudWatch Logs API reference).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import ClientError

from airflow_stack_lambda.clock import AsyncClock, Clock
from airflow_stack_lambda.records import FunctionError, Kind, Record, parse_record

_THROTTLING_CODES = frozenset({"ThrottlingException", "TooManyRequestsException", "Throttling"})
_MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class FollowSpec:
    """Everything the follower needs, JSON-serialisable so a trigger can carry it."""

    function_name: str
    log_group: str
    correlation_id: str
    invoked_at_ms: int
    """When the operator invoked the function (wall clock, ms)."""
    timeout_ms: int
    """The function's configured timeout; 0 when the call has already returned (sync)."""
    grace_ms: int = 60_000
    """Added to the timeout: the time the last lines may take to become searchable."""
    poll_interval_s: float = 10.0
    lookback_ms: int = 120_000
    """How far behind the newest seen event each pass starts, for events that arrive late."""
    settle_s: float = 2.0
    """Wait before one last pass after the end marker or error record (0: none)."""
    clock_skew_ms: int = 60_000
    """The first pass starts this much before ``invoked_at_ms``: Lambda's clock is not ours."""
    max_pages_per_pass: int = 100
    known_outcome: dict[str, Any] | None = None
    """For a synchronous call: the outcome the invoke response already told (an
    :meth:`Outcome.to_event`); the logs then only add lines and the error's stack."""

    def to_json(self) -> dict[str, Any]:
        """The fields as a dict, for the trigger's serialisation."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FollowSpec:
        """Back from :meth:`to_json`."""
        return cls(**data)


@dataclass(frozen=True)
class Outcome:
    """How the invocation ended, as the task will report it."""

    status: str
    """``success``, ``error`` or ``timeout``."""
    result: Any = None
    has_result: bool = False
    error: FunctionError | None = None
    message: str = ""
    stats: dict[str, int] = field(default_factory=dict)
    """Counts for the overhead figure: ``filter_calls``, ``passes``, ``lines``."""

    @classmethod
    def success(cls, result: Any = None, has_result: bool = False) -> Outcome:
        """The function returned (``result`` only when ``has_result``)."""
        return cls("success", result=result, has_result=has_result)

    @classmethod
    def failure(cls, error: FunctionError) -> Outcome:
        """The function failed with ``error``."""
        return cls("error", error=error)

    def to_event(self) -> dict[str, Any]:
        """JSON for a ``TriggerEvent`` (and for :attr:`FollowSpec.known_outcome`)."""
        return {
            "status": self.status,
            "result": self.result,
            "has_result": self.has_result,
            "error": self.error.to_json() if self.error else None,
            "message": self.message,
            "stats": dict(self.stats),
        }

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Outcome:
        """Back from :meth:`to_event`."""
        error = event.get("error")
        return cls(
            status=event["status"],
            result=event.get("result"),
            has_result=bool(event.get("has_result")),
            error=FunctionError.from_json(error) if error else None,
            message=event.get("message", ""),
            stats=dict(event.get("stats") or {}),
        )


class LogFollower:
    """The state of following one invocation; no I/O, no clock of its own.

    A driver calls, per polling pass: :meth:`begin_pass`, then :meth:`page_request` and
    :meth:`ingest` for each page, then :meth:`end_pass`; then :meth:`outcome` and, while that
    is ``None``, sleeps :meth:`next_delay_s` and starts the next pass.
    """

    def __init__(self, spec: FollowSpec) -> None:
        self.spec = spec
        self._known = Outcome.from_event(spec.known_outcome) if spec.known_outcome else None
        self._seen: dict[str, int] = {}  # eventId -> timestamp, pruned below the window
        self._newest_ms: int | None = None
        self._start_marker_ms: int | None = None
        self._end: Record | None = None
        self._error: Record | None = None
        self._passes_after_terminal = 0
        self._pass_params: dict[str, Any] = {}
        self._throttled_passes = 0  # consecutive passes cut short by throttling
        self._throttled_this_pass = False
        self.filter_calls = 0
        self.passes = 0
        self.lines = 0

    # -- one polling pass -------------------------------------------------------------

    def window_start_ms(self) -> int:
        """The ``startTime`` of the next pass."""
        earliest = self.spec.invoked_at_ms - self.spec.clock_skew_ms
        if self._newest_ms is None:
            return earliest
        return max(earliest, self._newest_ms - self.spec.lookback_ms)

    def begin_pass(self) -> None:
        """Fix the request of this pass: every page of a pass asks the same question."""
        self._throttled_this_pass = False
        self._pass_params = {
            "logGroupName": self.spec.log_group,
            # Quoted: the ID has '.' and '-', which a filter term only matches in quotes.
            "filterPattern": f'"{self.spec.correlation_id}"',
            "startTime": self.window_start_ms(),
        }

    def page_request(self, next_token: str | None) -> dict[str, Any]:
        """The ``FilterLogEvents`` arguments for the next page of this pass."""
        self.filter_calls += 1
        if next_token:
            return {**self._pass_params, "nextToken": next_token}
        return dict(self._pass_params)

    def ingest(self, events: list[dict[str, Any]]) -> list[Record]:
        """The new lines of this invocation among ``events``, oldest first; markers noted."""
        fresh = []
        for event in events:
            event_id = event.get("eventId") or _fallback_event_id(event)
            if event_id in self._seen:
                continue
            self._seen[event_id] = event["timestamp"]
            record = parse_record(event["message"], self.spec.correlation_id)
            if record is not None:
                fresh.append((event["timestamp"], event_id, record))
            if self._newest_ms is None or event["timestamp"] > self._newest_ms:
                self._newest_ms = event["timestamp"]
        # By timestamp only, and stable: lines of one millisecond keep the API's order
        # (timestamp, ingestion time, PutLogEvents request). An eventId is an opaque,
        # unique ID, not an order: compared as strings, "100" came before "99" (the
        # emulator's IDs have no fixed width) and a start marker was copied after the
        # error record written in the same millisecond.
        fresh.sort(key=lambda item: item[0])
        for timestamp, _, record in fresh:
            self._note_marker(timestamp, record)
        self.lines += len(fresh)
        return [record for _, _, record in fresh]

    def _note_marker(self, timestamp: int, record: Record) -> None:
        if record.kind is Kind.START and self._start_marker_ms is None:
            self._start_marker_ms = timestamp
        elif record.kind is Kind.END and self._end is None:
            self._end = record
        elif record.kind is Kind.ERROR and self._error is None:
            self._error = record

    def note_throttled(self) -> None:
        """The pass was cut short by throttling: the next waits longer (doubling, capped)."""
        self._throttled_this_pass = True

    def end_pass(self) -> None:
        """Close the pass: forget event ids the next window cannot return again."""
        self.passes += 1
        self._throttled_passes = self._throttled_passes + 1 if self._throttled_this_pass else 0
        floor = self.window_start_ms()
        self._seen = {eid: ts for eid, ts in self._seen.items() if ts >= floor}
        if self._terminal_seen():
            self._passes_after_terminal += 1

    # -- when is it over --------------------------------------------------------------

    def _terminal_seen(self) -> bool:
        return self._end is not None or self._error is not None

    def deadline_ms(self) -> int:
        """When the invocation counts as timed out: its start (the start marker if seen,
        else the invocation) plus the function's timeout plus the grace period."""
        started = max(self.spec.invoked_at_ms, self._start_marker_ms or 0)
        return started + self.spec.timeout_ms + self.spec.grace_ms

    def outcome(self, now_ms: int) -> Outcome | None:
        """The outcome once known, else ``None`` (poll again)."""
        settled = self.spec.settle_s <= 0 or self._passes_after_terminal >= 2
        if self._terminal_seen() and settled:
            return self._with_stats(self._terminal_outcome())
        if now_ms < self.deadline_ms():
            return None
        if self._terminal_seen():
            return self._with_stats(self._terminal_outcome())
        if self._known is not None:
            return self._with_stats(self._known)
        return self._with_stats(self._timeout_outcome())

    def next_delay_s(self, now_ms: int) -> float:
        """How long to sleep before the next pass: short while settling, longer after
        throttling, never past the deadline."""
        if self._terminal_seen():
            return max(self.spec.settle_s, 0.0)
        backoff = self.spec.poll_interval_s * (2**self._throttled_passes)
        delay = max(min(backoff, _MAX_BACKOFF_S), self.spec.poll_interval_s)
        until_deadline = (self.deadline_ms() - now_ms) / 1000
        return max(min(delay, until_deadline), 0.0)

    def _terminal_outcome(self) -> Outcome:
        known = self._known
        if known is not None and known.status == "success":
            # The invoke response holds the whole result; an end marker may have left it out.
            return known
        if self._error is not None:
            return Outcome.failure(self._error.error)
        if known is not None:
            return known
        assert self._end is not None
        outcome = Outcome.success(self._end.fields.get("result"), self._end.has_result)
        omitted = self._end.fields.get("result_omitted")
        if omitted:
            note = f"the end marker left the function's result out: {omitted}"
            outcome = dataclasses.replace(outcome, message=note)
        return outcome

    def _timeout_outcome(self) -> Outcome:
        since = "its start marker" if self._start_marker_ms is not None else "the invocation"
        waited_s = (self.spec.timeout_ms + self.spec.grace_ms) / 1000
        return Outcome(
            "timeout",
            message=(
                f"no end marker or error record from {self.spec.function_name} for correlation "
                f"ID {self.spec.correlation_id} within {waited_s:g}s of {since} (the function's "
                f"timeout {self.spec.timeout_ms / 1000:g}s plus {self.spec.grace_ms / 1000:g}s "
                f"grace); {self.lines} line(s) seen in {self.spec.log_group}"
            ),
        )

    def _with_stats(self, outcome: Outcome) -> Outcome:
        stats = {"filter_calls": self.filter_calls, "passes": self.passes, "lines": self.lines}
        return dataclasses.replace(outcome, stats=stats)


def _fallback_event_id(event: dict[str, Any]) -> str:
    """An id for an event without ``eventId`` (the API always sends one; emulators may not)."""
    return f"{event.get('logStreamName')}/{event['timestamp']}/{event['message']}"


# -- drivers ----------------------------------------------------------------------------


class LogsClient(Protocol):
    """The one CloudWatch Logs call the follower makes (a boto3 ``logs`` client has it)."""

    def filter_log_events(self, **kwargs: Any) -> dict[str, Any]:
        """``FilterLogEvents``."""
        ...


class AsyncLogsClient(Protocol):
    """The same call on an aiobotocore ``logs`` client."""

    def filter_log_events(self, **kwargs: Any) -> Awaitable[dict[str, Any]]:
        """``FilterLogEvents``."""
        ...


Emit = Callable[[str], None]


def _pass_stops_on(error: ClientError, follower: LogFollower) -> bool:
    """Whether a failed page only ends the pass (``True``) instead of the follow."""
    code = error.response.get("Error", {}).get("Code")
    if code == "ResourceNotFoundException":
        # Lambda creates the log group on the function's first log line: not there yet.
        return True
    if code in _THROTTLING_CODES:
        follower.note_throttled()
        return True
    return False


def follow(client: LogsClient, spec: FollowSpec, clock: Clock, emit: Emit) -> Outcome:
    """Follow with a blocking client and clock; every line of the invocation goes to ``emit``."""
    follower = LogFollower(spec)
    while True:
        follower.begin_pass()
        token: str | None = None
        for _ in range(spec.max_pages_per_pass):
            try:
                page = client.filter_log_events(**follower.page_request(token))
            except ClientError as error:
                if _pass_stops_on(error, follower):
                    break
                raise
            for record in follower.ingest(page.get("events", [])):
                emit(record.text)
            token = page.get("nextToken")
            if not token:
                break
        follower.end_pass()
        now = clock.now_ms()
        outcome = follower.outcome(now)
        if outcome is not None:
            return outcome
        clock.sleep(follower.next_delay_s(now))


async def follow_async(
    client: AsyncLogsClient, spec: FollowSpec, clock: AsyncClock, emit: Emit
) -> Outcome:
    """:func:`follow` for the triggerer: the same passes with an async client and sleep."""
    follower = LogFollower(spec)
    while True:
        follower.begin_pass()
        token: str | None = None
        for _ in range(spec.max_pages_per_pass):
            try:
                page = await client.filter_log_events(**follower.page_request(token))
            except ClientError as error:
                if _pass_stops_on(error, follower):
                    break
                raise
            for record in follower.ingest(page.get("events", [])):
                emit(record.text)
            token = page.get("nextToken")
            if not token:
                break
        follower.end_pass()
        now = clock.now_ms()
        outcome = follower.outcome(now)
        if outcome is not None:
            return outcome
        await clock.sleep(follower.next_delay_s(now))
