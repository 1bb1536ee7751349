"""A DAG whose only task raises: the scaler's failed-run alert is tested against it
(tests/e2e/test_scaler_e2e.py). No retries, so one run ends `failed` at once."""

import pendulum
from airflow.sdk import dag, task


@dag(dag_id="e2e_fails", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False,
     tags=["e2e"], default_args={"retries": 0})
def e2e_fails():
    @task
    def boom() -> None:
        print("E2E-MARKER e2e_fails.boom raises on purpose")
        raise RuntimeError("e2e_fails.boom fails on purpose")

    boom()


e2e_fails()
