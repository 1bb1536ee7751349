"""The DAG the e2e's stream triggers (tests/e2e/test_streams_e2e.py): one run per event,
with the event as its `conf`.

Paused when created: the test proves that each distinct event creates exactly one run
with the right `conf` (what the stream processor owns); running them would only put a
hundred-odd task instances on the workers the scaler tests just scaled to zero. A run of a
paused DAG is created `queued` and stays so.
"""

import pendulum
from airflow.sdk import dag, task


@dag(dag_id="e2e_stream", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False,
     tags=["e2e"], is_paused_upon_creation=True, default_args={"retries": 0})
def e2e_stream():
    @task
    def handle(dag_run=None) -> dict:
        print(f"E2E-MARKER e2e_stream.handle conf={dag_run.conf}")
        return dag_run.conf

    handle()


e2e_stream()
