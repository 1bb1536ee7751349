"""Tracked Lambda invocations from DAGs (issue 16), on the `secrets` shape: dev.yaml with
`airflow.build` and `airflow.lambda_functions` listing the example functions.

The provider comes into the local Airflow through the image build's own install script
(harness/image_build.py); the worker and the triggerer call Lambda and CloudWatch Logs
with their task roles, held by the emulator to what the template grants; the example Rust
function (crates/tracked-example) runs in the emulator as a user's function would on AWS
(harness/tracked_lambda.py). dags/e2e_tracked_lambda.py holds the cases.

Run (as root, once tests/run-all.sh has installed everything):
    $AIRFLOW_STACK_VENV/bin/pytest -s -p no:cacheprovider tests/e2e -k tracked_lambda
"""

from __future__ import annotations

import re
import time
import urllib.parse
from pathlib import Path

import pytest

from harness.procs import descendants
from harness.tracked_lambda import create_example_functions, function_lines

tracked_only = pytest.mark.parametrize("stack", ["secrets"], indirect=True)

DAG = "e2e_tracked_lambda"
LOAD_DAG = "e2e_tracked_lambda_load"
ASYNC_ERROR = "E2E-EXACT async: the vendor API answered 418 I'm a teapot"
SYNC_ERROR = "E2E-EXACT sync: the input file s3://e2e/in.csv has no header"
STOCK_ERROR = "E2E-EXACT stock: this failure is invisible to the stock operator"
FUNCTION_TIMEOUT_S = 30
LOAD_WAITERS = 50
# <dag>.<task>.<run>.m<map index>.t<try>.<12 hex> (airflow_stack_lambda/correlation.py)
CORRELATION = re.compile(r"e2e_tracked_lambda\.retried\.[A-Za-z0-9_-]+\.m-1\.t(\d+)\.[0-9a-f]{12}")


def _states(airflow, dag_id: str, run_id: str) -> dict[tuple[str, int], dict]:
    q = urllib.parse.quote(run_id, safe="")
    tis = airflow.get(f"/api/v2/dags/{dag_id}/dagRuns/{q}/taskInstances", limit=100)
    return {(ti["task_id"], ti.get("map_index", -1)): ti for ti in tis["task_instances"]}


def _run_until_done(airflow, dag_id: str, run_id: str, timeout: float, on_poll=None) -> str:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        tis = _states(airflow, dag_id, run_id)
        if on_poll:
            on_poll(tis)
        state = airflow.run_state(dag_id, run_id)
        if state in ("success", "failed"):
            return state
        time.sleep(1)
    raise AssertionError(f"{dag_id} {run_id} still running after {timeout:.0f}s: "
                         f"{ {k: v['state'] for k, v in _states(airflow, dag_id, run_id).items()} }")


@pytest.fixture
def functions(stack):
    return create_example_functions(stack.aws)


@tracked_only
def test_the_provider_came_in_through_the_image_build(stack):
    assert stack.image is not None, "the shape has no image build"
    context = stack.image.context
    assert (context / "providers" / "airflow-stack-lambda" / "pyproject.toml").is_file(), (
        f"the image context has no provider: {sorted(p.name for p in context.iterdir())}")
    assert "airflow-stack-lambda" in stack.image.install_output or \
        "airflow_stack_lambda" in stack.image.install_output, stack.image.install_output[-3000:]
    assert (stack.airflow_venv / "bin").is_dir()
    installed = list(stack.airflow_venv.glob("lib/python3*/site-packages/airflow_stack_lambda"))
    assert installed, "the provider is not in the e2e's Airflow environment"


@tracked_only
def test_tracked_cases_report_the_real_outcome(stack, airflow, functions):
    airflow.wait_dags([DAG, LOAD_DAG], timeout=180)
    run_id = airflow.trigger(DAG)
    started = time.monotonic()
    seen_deferred: set[str] = set()

    def note(tis):
        seen_deferred.update(k[0] for k, ti in tis.items() if ti["state"] == "deferred")

    _run_until_done(airflow, DAG, run_id, timeout=300, on_poll=note)
    took = time.monotonic() - started
    tis = _states(airflow, DAG, run_id)
    state = {k[0]: ti["state"] for k, ti in tis.items()}
    logs = {}

    def log(task, try_number=1):
        if (task, try_number) not in logs:
            logs[(task, try_number)] = airflow.task_log(DAG, run_id, task, try_number)
        return logs[(task, try_number)]

    expected = {"async_success": "success", "async_failure": "failed",
                "sync_failure": "failed", "no_end_marker": "failed", "retried": "success",
                "stock_async_failure": "success"}
    wrong = {t: (state.get(t), want) for t, want in expected.items() if state.get(t) != want}
    assert not wrong, "task states (got, wanted): " + repr(wrong) + "\n" + "\n".join(
        f"--- {t}\n{log(t)[-2500:]}" for t in wrong)

    # Success returns the function's result.
    assert airflow.xcom(DAG, run_id, "async_success") == {"rows": 42}
    # Async and sync failures: the task log holds the function's exact error.
    assert ASYNC_ERROR in log("async_failure"), log("async_failure")[-3000:]
    assert "connection reset by peer" in log("async_failure"), log("async_failure")[-3000:]
    assert SYNC_ERROR in log("sync_failure"), log("sync_failure")[-3000:]
    # No end marker: the task fails at the function's timeout plus the grace period.
    no_end = tis[("no_end_marker", -1)]
    assert "LambdaInvocationTimeout" in log("no_end_marker") or \
        "timeout" in log("no_end_marker").lower(), log("no_end_marker")[-3000:]
    # The waiting happened on the triggerer.
    assert {"async_success", "async_failure", "no_end_marker", "retried"} <= seen_deferred, (
        f"tracked tasks never seen deferred: {seen_deferred}")

    # A retried task: each try has its own correlation ID and only its own lines.
    first, second = log("retried", 1), log("retried", 2)
    ids_1 = set(CORRELATION.findall(first)), {m.group(0) for m in CORRELATION.finditer(first)}
    ids_2 = set(CORRELATION.findall(second)), {m.group(0) for m in CORRELATION.finditer(second)}
    assert ids_1[0] == {"1"} and len(ids_1[1]) == 1, f"try 1 log names {ids_1[1]}"
    assert ids_2[0] == {"2"} and len(ids_2[1]) == 1, f"try 2 log names {ids_2[1]}"
    assert "E2E-EXACT first try fails" in first and "E2E-EXACT first try fails" not in second
    assert tis[("retried", -1)]["try_number"] == 2

    # The stock operator marked the failing async invocation `success`, though the
    # function failed: its error is in the function's log group.
    stock_lines = function_lines(stack.aws, "e2e-tracked-example", STOCK_ERROR)
    assert stock_lines, "the stock operator's invocation never logged its failure"
    # (Its own log holds the message only as the payload it sent: nothing tells it the
    # function failed.)

    waited = (_ts(no_end["end_date"]) - _ts(no_end["start_date"])) if no_end.get(
        "end_date") and no_end.get("start_date") else None
    print(f"[e2e] tracked Lambda: 6 cases in {took:.1f}s; no end marker failed after "
          f"{waited if waited is None else round(waited, 1)}s (function timeout "
          f"{FUNCTION_TIMEOUT_S}s + grace 10s); deferred: {sorted(seen_deferred)}", flush=True)
    stack.fail_on_violations("after the tracked Lambda cases")


def _ts(text: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _tree_rss_kib(pid: int) -> int:
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        total += int(m.group(1)) if m else 0
    return total


def _filter_calls(stack) -> int:
    return sum(1 for c in stack.aws.calls()
               if "triggerer" in c["identity"] and c["action"] == "logs:FilterLogEvents")


@tracked_only
def test_fifty_waiting_invocations_hold_no_worker_slot(stack, airflow, functions):
    airflow.wait_dags([LOAD_DAG], timeout=180)
    triggerer = stack.containers_named("triggerer")[0]
    concurrency = int(stack.container_env("worker")[0]["AIRFLOW__CELERY__WORKER_CONCURRENCY"])
    idle_kib = _tree_rss_kib(triggerer.proc.pid)
    run_id = airflow.trigger(LOAD_DAG)
    peak = {"deferred": 0, "running": 0}
    window = {}

    def note(tis):
        deferred = sum(1 for ti in tis.values() if ti["state"] == "deferred")
        running = sum(1 for ti in tis.values() if ti["state"] == "running")
        peak["deferred"] = max(peak["deferred"], deferred)
        if deferred == LOAD_WAITERS and "start" not in window:
            peak["running"] = running
            window.update(start=time.monotonic(), calls=_filter_calls(stack),
                          kib=_tree_rss_kib(triggerer.proc.pid))
        elif "start" in window and "end" not in window and \
                time.monotonic() - window["start"] >= 30:
            # The first ones deferred long before the last: some may have resumed by now.
            window.update(end=time.monotonic(), calls_end=_filter_calls(stack),
                          deferred_end=deferred, kib_end=_tree_rss_kib(triggerer.proc.pid))

    state = _run_until_done(airflow, LOAD_DAG, run_id, timeout=600, on_poll=note)
    assert peak["deferred"] == LOAD_WAITERS, (
        f"at most {peak['deferred']} of {LOAD_WAITERS} invocations were deferred at once")
    # More waiting invocations than the worker has slots: none of them holds one.
    assert LOAD_WAITERS > concurrency and peak["running"] == 0, (peak, concurrency)
    assert state == "success", {k: v["state"] for k, v in _states(airflow, LOAD_DAG, run_id).items()}
    assert "end" in window, window
    minutes = (window["end"] - window["start"]) / 60
    # Waiting invocations over the window: all of them at its start, deferred_end at its end.
    waiting = (LOAD_WAITERS + window["deferred_end"]) / 2
    calls_per_min = (window["calls_end"] - window["calls"]) / minutes / waiting
    kib_each = (max(window["kib"], window["kib_end"]) - idle_kib) / LOAD_WAITERS
    results = sorted(airflow.xcom(LOAD_DAG, run_id, "wait", map_index=i) for i in range(3))
    assert results == [0, 1, 2], results
    print(f"[e2e] tracked Lambda: {LOAD_WAITERS} invocations waiting at once on the triggerer "
          f"(worker concurrency {concurrency}, none running): triggerer RSS {idle_kib / 1024:.0f} "
          f"MiB idle, {window['kib'] / 1024:.0f}-{window['kib_end'] / 1024:.0f} MiB waiting, "
          f"{kib_each:.0f} KiB per waiting invocation; FilterLogEvents "
          f"{calls_per_min:.1f} calls/min per waiting invocation (poll interval 10 s; "
          f"{window['deferred_end']} still waiting at the end of the 30 s window)",
          flush=True)
    stack.fail_on_violations("after 50 waiting tracked invocations")
