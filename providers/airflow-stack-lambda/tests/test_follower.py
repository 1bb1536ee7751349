"""The log follower on a fake clock and a fake CloudWatch Logs: no AWS, no real sleeps."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import (
    T0,
    FakeAsyncClock,
    FakeAsyncLogs,
    FakeClock,
    FakeLogs,
    client_error,
    record,
)

from airflow_stack_lambda.follower import (
    FollowSpec,
    LogFollower,
    Outcome,
    follow,
    follow_async,
)
from airflow_stack_lambda.records import FunctionError

CID = "etl.load.manual__2026-12-01T17-00-00-00-00.m-1.t1.0123456789ab"


def spec(**overrides: object) -> FollowSpec:
    base: dict[str, object] = dict(
        function_name="fn",
        log_group="/aws/lambda/fn",
        correlation_id=CID,
        invoked_at_ms=T0,
        timeout_ms=30_000,
        grace_ms=10_000,
        poll_interval_s=5.0,
        lookback_ms=120_000,
        settle_s=2.0,
    )
    base.update(overrides)
    return FollowSpec(**base)  # type: ignore[arg-type]


def run(logs: FakeLogs, clock: FakeClock, **overrides: object) -> tuple[Outcome, list[str]]:
    lines: list[str] = []
    outcome = follow(logs, spec(**overrides), clock, lines.append)
    return outcome, lines


def test_success_returns_the_result_and_copies_every_line(clock: FakeClock) -> None:
    logs = FakeLogs(clock)
    logs.put(T0 + 1000, record(CID, "start", message="invocation started"))
    logs.put(T0 + 1100, record(CID, message="loading 3 rows"))
    logs.put(T0 + 1200, "plain print with " + CID)
    logs.put(T0 + 1300, record(CID, "end", result={"rows": 3}))

    outcome, lines = run(logs, clock)

    assert outcome.status == "success"
    assert outcome.has_result and outcome.result == {"rows": 3}
    assert len(lines) == 4 and lines[2] == "plain print with " + CID
    assert '"loading 3 rows"' in lines[1]
    assert outcome.stats["lines"] == 4


def test_end_marker_without_result_succeeds_with_none(clock: FakeClock) -> None:
    logs = FakeLogs(clock)
    logs.put(T0 + 1000, record(CID, "end"))
    outcome, _ = run(logs, clock)
    assert outcome.status == "success" and not outcome.has_result and outcome.result is None


def test_an_omitted_result_says_why(clock: FakeClock) -> None:
    logs = FakeLogs(clock)
    logs.put(T0 + 1000, record(CID, "end", result_omitted="the result is 200000 bytes"))
    outcome, _ = run(logs, clock)
    assert outcome.status == "success" and not outcome.has_result
    assert "200000 bytes" in outcome.message


def test_error_record_fails_with_its_message_type_and_stack(clock: FakeClock) -> None:
    logs = FakeLogs(clock)
    logs.put(T0 + 1000, record(CID, "start"))
    logs.put(T0 + 1100, record(CID, message="connecting"))
    logs.put(
        T0 + 1200,
        record(
            CID,
            "error",
            errorMessage="connection refused: db:5432",
            errorType="ConnectError",
            stackTrace=["load failed", "caused by: connection refused: db:5432"],
        ),
    )

    outcome, lines = run(logs, clock)

    assert outcome.status == "error"
    assert outcome.error == FunctionError(
        "connection refused: db:5432",
        "ConnectError",
        ("load failed", "caused by: connection refused: db:5432"),
    )
    assert len(lines) == 3


def test_lines_of_one_millisecond_keep_the_apis_order_whatever_their_event_ids(
    clock: FakeClock,
) -> None:
    # A function that fails at once writes its start marker and its error record in the
    # same millisecond; the API returns them in the order they were written. Event IDs
    # are opaque: these two compare the other way round as strings.
    logs = FakeLogs(clock)
    logs.put(T0 + 1000, record(CID, "start"), event_id="99")
    logs.put(T0 + 1000, record(CID, "error", errorMessage="no route"), event_id="100")

    outcome, lines = run(logs, clock)

    assert outcome.status == "error"
    assert [json.loads(line)["airflow_tracking"] for line in lines] == ["start", "error"]


def test_no_end_marker_times_out_after_timeout_plus_grace(clock: FakeClock) -> None:
    logs = FakeLogs(clock)
    logs.put(T0 + 3000, record(CID, "start"))
    logs.put(T0 + 4000, record(CID, message="sleeping"))

    outcome, lines = run(logs, clock)

    assert outcome.status == "timeout"
    assert "within 40s of its start marker" in outcome.message
    # The deadline counts from the start marker: T0+3s + 30s timeout + 10s grace.
    assert clock.now == T0 + 3000 + 40_000
    assert len(lines) == 2


def test_no_line_at_all_times_out_from_the_invocation(clock: FakeClock) -> None:
    outcome, lines = run(FakeLogs(clock), clock)
    assert outcome.status == "timeout" and "of the invocation" in outcome.message
    assert clock.now == T0 + 40_000 and lines == []
    assert all(s <= 5.0 for s in clock.sleeps)  # polled every interval, never past it


def test_events_across_several_pages_are_each_copied_once_in_order(clock: FakeClock) -> None:
    logs = FakeLogs(clock, page_size=4)
    logs.put(T0 + 100, record(CID, "start"))
    for i in range(25):
        logs.put(T0 + 200 + i, record(CID, message=f"line {i:02d}"))
    logs.put(T0 + 400, record(CID, "end", result="ok"))

    outcome, lines = run(logs, clock)

    assert outcome.status == "success" and outcome.result == "ok"
    numbered = [line for line in lines if '"line ' in line]
    assert [int(line.split('"line ')[1][:2]) for line in numbered] == list(range(25))
    assert len(lines) == 27
    assert any("nextToken" in call for call in logs.calls)


def test_an_empty_page_with_a_token_is_not_the_end(clock: FakeClock) -> None:
    logs = FakeLogs(clock)
    logs.empty_first_page = True
    logs.put(T0 + 100, record(CID, "end", result=1))
    outcome, _ = run(logs, clock)
    assert outcome.status == "success" and outcome.result == 1


def test_events_that_arrive_late_and_out_of_order_are_still_copied_once(
    clock: FakeClock,
) -> None:
    logs = FakeLogs(clock)
    logs.put(T0 + 1000, record(CID, "start"), visible_at=T0 + 1500)
    # Written at +2s but searchable only at +24s, after a newer line (+10s) was seen.
    logs.put(T0 + 2000, record(CID, message="late line"), visible_at=T0 + 24_000)
    logs.put(T0 + 10_000, record(CID, message="newer line"), visible_at=T0 + 11_000)
    logs.put(T0 + 28_000, record(CID, "end", result="done"), visible_at=T0 + 29_000)

    outcome, lines = run(logs, clock)

    assert outcome.status == "success" and outcome.result == "done"
    assert [line.count("late line") for line in lines] == [0, 0, 1, 0]
    assert "newer line" in lines[1] and "late line" in lines[2]
    # Later passes re-read the window (the start line came back each time): never re-copied.
    assert len(lines) == 4 and len(logs.calls) > 4


def test_a_late_error_record_after_the_deadline_is_not_waited_for(clock: FakeClock) -> None:
    logs = FakeLogs(clock)
    logs.put(T0 + 1000, record(CID, "error", errorMessage="boom"), visible_at=T0 + 60_000)
    outcome, _ = run(logs, clock)
    assert outcome.status == "timeout"


def test_a_late_line_just_before_the_end_marker_is_caught_by_the_settle_pass(
    clock: FakeClock,
) -> None:
    logs = FakeLogs(clock)
    logs.put(T0 + 4000, record(CID, message="last words"), visible_at=T0 + 6000)
    logs.put(T0 + 4001, record(CID, "end"), visible_at=T0 + 5000)
    outcome, lines = run(logs, clock)
    assert outcome.status == "success"
    assert any("last words" in line for line in lines)


def test_lines_of_other_invocations_are_not_copied(clock: FakeClock) -> None:
    logs = FakeLogs(clock)
    other = CID[:-12] + "ffffffffffff"
    logs.put(T0 + 100, record(other, "end", result="theirs"))
    # Contains our ID as text but names another invocation in its field.
    logs.put(T0 + 150, record(other, message=f"mentions {CID}"))
    logs.put(T0 + 200, record(CID, "end", result="ours"))
    outcome, lines = run(logs, clock)
    assert outcome.result == "ours" and len(lines) == 1


def test_throttling_backs_off_and_recovers(clock: FakeClock) -> None:
    logs = FakeLogs(clock)
    logs.errors = [client_error("ThrottlingException"), client_error("ThrottlingException")]
    logs.put(T0 + 100, record(CID, "end"))
    outcome, _ = run(logs, clock)
    assert outcome.status == "success"
    assert clock.sleeps[:2] == [10.0, 20.0]  # 5s interval, doubled per throttled pass


def test_a_log_group_that_does_not_exist_yet_is_waited_for(clock: FakeClock) -> None:
    logs = FakeLogs(clock)
    logs.errors = [client_error("ResourceNotFoundException")]
    logs.put(T0 + 100, record(CID, "end"))
    assert run(logs, clock)[0].status == "success"


def test_other_aws_errors_are_raised(clock: FakeClock) -> None:
    logs = FakeLogs(clock)
    logs.errors = [client_error("AccessDeniedException")]
    with pytest.raises(Exception, match="AccessDeniedException"):
        run(logs, clock)


def test_a_synchronous_success_keeps_the_response_result(clock: FakeClock) -> None:
    logs = FakeLogs(clock)
    logs.put(T0 - 500, record(CID, "end", result_omitted="too large"))
    known = Outcome.success({"big": "x" * 100}, has_result=True).to_event()
    outcome, lines = run(logs, clock, timeout_ms=0, known_outcome=known, clock_skew_ms=60_000)
    assert outcome.result == {"big": "x" * 100} and len(lines) == 1


def test_a_synchronous_failure_prefers_the_error_record_with_its_stack(clock: FakeClock) -> None:
    logs = FakeLogs(clock)
    logs.put(
        T0 - 500,
        record(
            CID,
            "error",
            errorMessage="bad input",
            errorType="E",
            stackTrace=["outer", "caused by: inner"],
        ),
    )
    known = Outcome.failure(FunctionError("bad input", "Unhandled")).to_event()
    outcome, _ = run(logs, clock, timeout_ms=0, known_outcome=known)
    assert outcome.error is not None and outcome.error.stack_trace == ("outer", "caused by: inner")


def test_a_synchronous_failure_without_lines_reports_the_response_error(
    clock: FakeClock,
) -> None:
    known = Outcome.failure(FunctionError("bad input", "Unhandled")).to_event()
    outcome, _ = run(FakeLogs(clock), clock, timeout_ms=0, grace_ms=30_000, known_outcome=known)
    assert outcome.status == "error" and outcome.error == FunctionError("bad input", "Unhandled")
    assert clock.now == T0 + 30_000


def test_the_async_driver_follows_the_same_way() -> None:
    clock = FakeAsyncClock()
    logs = FakeLogs(clock, page_size=2)
    logs.put(T0 + 1000, record(CID, "start"))
    logs.put(T0 + 1100, record(CID, message="a"), visible_at=T0 + 7000)
    logs.put(T0 + 1200, record(CID, message="b"))
    logs.put(T0 + 8000, record(CID, "end", result=[1, 2]))
    lines: list[str] = []

    outcome = asyncio.run(follow_async(FakeAsyncLogs(logs), spec(), clock, lines.append))

    assert outcome.status == "success" and outcome.result == [1, 2]
    assert len(lines) == 4


def test_spec_and_outcome_survive_json() -> None:
    s = spec(known_outcome=Outcome.failure(FunctionError("m", "t", ("s",))).to_event())
    assert FollowSpec.from_json(s.to_json()) == s
    o = Outcome("error", error=FunctionError("m", None, ("a", "b")), stats={"passes": 2})
    assert Outcome.from_event(o.to_event()) == o


def test_seen_event_ids_are_pruned_below_the_window() -> None:
    follower = LogFollower(spec(lookback_ms=1000, clock_skew_ms=0))
    follower.begin_pass()
    follower.ingest(
        [
            {"eventId": "a", "timestamp": T0 + 10, "message": record(CID)},
            {"eventId": "b", "timestamp": T0 + 5000, "message": record(CID)},
        ]
    )
    follower.end_pass()
    assert follower.window_start_ms() == T0 + 4000
    assert set(follower._seen) == {"b"}
