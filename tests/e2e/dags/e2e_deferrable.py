"""A deferrable sensor: the worker defers it, the triggerer fires it a few seconds later."""

from datetime import timedelta

import pendulum
from airflow.providers.standard.sensors.time_delta import WaitSensor
from airflow.sdk import dag, task


@dag(dag_id="e2e_deferrable", schedule=None, start_date=pendulum.datetime(2025, 1, 1),
     catchup=False, tags=["e2e"])
def e2e_deferrable():
    wait = WaitSensor(task_id="wait", time_to_wait=timedelta(seconds=10), deferrable=True)

    @task
    def after() -> str:
        print("E2E-MARKER e2e_deferrable.after")
        return "after the trigger"

    wait >> after()


e2e_deferrable()
