"""Reads a connection created through the REST API; its password is Fernet-encrypted by
the api-server and given to the task through the Execution API."""

import hashlib

import pendulum
from airflow.sdk import BaseHook, dag, task

CONN_ID = "e2e_secret_conn"


# No retries: see e2e_python.py (Spot workers get one retry by default).
@dag(dag_id="e2e_connection", schedule=None, start_date=pendulum.datetime(2025, 1, 1),
     catchup=False, tags=["e2e"], default_args={"retries": 0})
def e2e_connection():
    @task
    def read_connection() -> dict:
        conn = BaseHook.get_connection(CONN_ID)
        if not conn.password:
            raise ValueError(f"connection {CONN_ID} has no password")
        print(f"E2E-MARKER e2e_connection.read_connection login={conn.login} host={conn.host}")
        # Only a digest leaves the task: the test compares it with the password it set.
        return {"login": conn.login, "host": conn.host,
                "password_sha256": hashlib.sha256(conn.password.encode()).hexdigest()}

    read_connection()


e2e_connection()
