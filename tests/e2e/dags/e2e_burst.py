"""A short burst of work for the scaler's scale-in test: three 15-second tasks, so that
with a long task holding one slot the scaler wants a second worker, and then, when the
burst is over, wants it gone again while the long task still runs. No retries."""

import time

import pendulum
from airflow.sdk import dag, task

TASKS = ("burst_0", "burst_1", "burst_2")
SECONDS = 15


@dag(dag_id="e2e_burst", schedule=None, start_date=pendulum.datetime(2025, 1, 1),
     catchup=False, tags=["e2e"], default_args={"retries": 0})
def e2e_burst():
    @task(retries=0)
    def nap() -> int:
        time.sleep(SECONDS)
        return SECONDS

    for task_id in TASKS:
        nap.override(task_id=task_id)()


e2e_burst()
