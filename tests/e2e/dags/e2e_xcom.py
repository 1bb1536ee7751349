"""XCom between two tasks (pushed by one worker task, pulled by the next)."""

import pendulum
from airflow.sdk import dag, task


@dag(dag_id="e2e_xcom", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False,
     tags=["e2e"])
def e2e_xcom():
    @task
    def produce() -> dict:
        print("E2E-MARKER e2e_xcom.produce")
        return {"numbers": [1, 2, 3, 4], "word": "airflow"}

    @task
    def consume(payload: dict) -> int:
        print(f"E2E-MARKER e2e_xcom.consume got {payload}")
        if payload != {"numbers": [1, 2, 3, 4], "word": "airflow"}:
            raise ValueError(f"unexpected XCom payload: {payload!r}")
        return sum(payload["numbers"]) * len(payload["word"])

    consume(produce())


e2e_xcom()
