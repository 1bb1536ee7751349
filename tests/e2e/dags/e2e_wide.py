"""Several independent tasks: while the worker is stopped they stay `queued`, which the
scaler must turn into DesiredWorkers > 0 (tests/e2e/test_scaler_e2e.py)."""

import pendulum
from airflow.sdk import dag, task

WIDTH = 3


@dag(dag_id="e2e_wide", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False,
     tags=["e2e"])
def e2e_wide():
    @task
    def part(i: int) -> int:
        print(f"E2E-MARKER e2e_wide.part {i}")
        return i

    for i in range(WIDTH):
        part.override(task_id=f"part_{i}")(i)


e2e_wide()
