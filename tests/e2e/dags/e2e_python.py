"""A plain Python task: runs on the Celery worker, logs a marker to the S3 task log."""

import platform

import pendulum
from airflow.sdk import dag, task


# No retries: the dev stack runs workers on Spot, where the stack makes one retry the
# default, and the mutation tests expect a broken run to end `failed` at once.
@dag(dag_id="e2e_python", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False,
     tags=["e2e"], default_args={"retries": 0})
def e2e_python():
    @task
    def hello() -> str:
        print(f"E2E-MARKER e2e_python.hello on python {platform.python_version()}")
        return "hello from the worker"

    hello()


e2e_python()
