"""A task that holds its worker until the test releases it, for the scaler's scale-in
test (tests/e2e/test_scaler_e2e.py) and the running task's log
(tests/e2e/test_airflow_e2e.py): it stays `running` while the scaler scales other
workers in and out around it, however long that takes on a slow machine, and ends as
soon as the test sets the Variable `e2e_long_release` to the run's id. No retries: a
task lost or restarted by a stopped worker shows as failed or as a try_number above 1."""

import time

import pendulum
from airflow.sdk import Variable, dag, task

RELEASE = "e2e_long_release"
MAX_SECONDS = 900


@dag(dag_id="e2e_long", schedule=None, start_date=pendulum.datetime(2025, 1, 1),
     catchup=False, tags=["e2e"], default_args={"retries": 0})
def e2e_long():
    @task(retries=0)
    def hold(**context) -> float:
        run_id = context["run_id"]
        started = time.monotonic()
        print(f"E2E-MARKER e2e_long.hold start {run_id}", flush=True)
        while time.monotonic() - started < MAX_SECONDS:
            if Variable.get(RELEASE, default=None) == run_id:
                held = time.monotonic() - started
                print(f"E2E-MARKER e2e_long.hold released after {held:.0f}s", flush=True)
                return held
            time.sleep(2)
        raise TimeoutError(f"not released within {MAX_SECONDS}s")

    hold()


e2e_long()
