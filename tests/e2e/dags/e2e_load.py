"""`width` tasks at once, each holding its worker slot for `seconds`: what one running
task costs a Celery worker in memory (tests/e2e/test_airflow_e2e.py measures it)."""

import time

import pendulum
from airflow.sdk import dag, get_current_context, task


@dag(dag_id="e2e_load", schedule=None, start_date=pendulum.datetime(2025, 1, 1),
     catchup=False, tags=["e2e"], params={"width": 4, "seconds": 20}, max_active_tasks=64)
def e2e_load():
    @task
    def slots() -> list[int]:
        return list(range(int(get_current_context()["params"]["width"])))

    @task
    def hold(i: int) -> int:
        seconds = int(get_current_context()["params"]["seconds"])
        print(f"E2E-MARKER e2e_load.hold {i}: holding the slot for {seconds}s")
        time.sleep(seconds)
        return i

    hold.expand(i=slots())


e2e_load()
