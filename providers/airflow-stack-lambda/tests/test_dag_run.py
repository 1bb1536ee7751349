"""The operator inside real Airflow: ``dag.test()`` on a fresh metadata database runs each
task, defers it, runs the trigger, resumes the task and records its state. Only AWS is
faked (the clients of conftest.py); the deferral, the trigger's serialisation, the task
log routing and the XCom are Airflow's own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]

DAG_FILE = textwrap.dedent(
    """
    import datetime, sys, time
    sys.path[:0] = [{src!r}, {tests!r}]
    from conftest import FakeAsyncClock, FakeAsyncLogs, FakeLambda, FakeLogs, record
    from airflow.sdk import DAG
    from airflow_stack_lambda.operators import TrackedLambdaInvokeOperator
    from airflow_stack_lambda.triggers import TrackedLambdaTrigger

    clock = FakeAsyncClock(int(time.time() * 1000))
    logs = FakeLogs(clock)
    fn = FakeLambda(logs, clock)

    def behaviour(cid, payload, started):
        logs.put(started + 100, record(cid, "start"))
        logs.put(started + 200, record(cid, message="working on " + payload["case"]))
        if payload["case"] == "fails":
            logs.put(started + 900, record(cid, "error", errorMessage="table orders is locked",
                                           errorType="LoadError", stackTrace=["load", "lock"]))
        else:
            logs.put(started + 900, record(cid, "end", result={{"rows": 3}}))

    fn.behaviour = behaviour
    TrackedLambdaInvokeOperator.clock = clock
    TrackedLambdaInvokeOperator.lambda_client = lambda self: fn
    TrackedLambdaTrigger.clock = clock

    async def fake_logs_client(self):
        return FakeAsyncLogs(logs)

    TrackedLambdaTrigger.logs_client = fake_logs_client

    with DAG("tracked", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
        for case in ("succeeds", "fails"):
            TrackedLambdaInvokeOperator(task_id=case, function_name="fn",
                                        payload={{"case": case}}, poll_interval=5)

    if __name__ == "__main__":
        run = dag.test()
        for ti in sorted(run.get_task_instances(), key=lambda ti: ti.task_id):
            print("STATE", ti.task_id, ti.state, flush=True)
    """
)


def test_a_dag_run_defers_resumes_and_reports(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    dag_file = home / "dags" / "tracked.py"
    dag_file.write_text(DAG_FILE.format(src=str(PACKAGE / "src"), tests=str(PACKAGE / "tests")))
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run(
        [*airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300
    )

    run = subprocess.run(
        [sys.executable, str(dag_file)], env=env, capture_output=True, text=True, timeout=300
    )
    out = run.stdout + run.stderr

    assert "STATE fails failed" in out and "STATE succeeds success" in out, out[-4000:]
    assert "new_state=deferred" in out  # waited on the trigger, not in the worker
    assert "working on succeeds" in out and "working on fails" in out  # lines in the task log
    assert "LoadError: table orders is locked" in out  # the exact error fails the task
    assert "Pushing xcom" in out
