"""Reads a connection and a variable that exist only in Secrets Manager, under the
prefixes of `airflow.secrets_backend` (shape `secrets`, tests/e2e/test_secrets_backend_e2e.py):
the worker's own backend finds them, with the worker's task role. Only digests leave the
task."""

import hashlib

import pendulum
from airflow.sdk import BaseHook, Variable, dag, task

CONN_ID = "e2e_sm_conn"
VARIABLE = "e2e_sm_variable"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# No retries: see e2e_python.py (Spot workers get one retry by default).
@dag(dag_id="e2e_secrets_backend", schedule=None, start_date=pendulum.datetime(2025, 1, 1),
     catchup=False, tags=["e2e"], default_args={"retries": 0})
def e2e_secrets_backend():
    @task
    def read_from_secrets_manager() -> dict:
        conn = BaseHook.get_connection(CONN_ID)
        value = Variable.get(VARIABLE)
        print(f"E2E-MARKER e2e_secrets_backend login={conn.login} host={conn.host}")
        return {"login": conn.login, "host": conn.host,
                "password_sha256": _digest(conn.password or ""),
                "variable_sha256": _digest(value)}

    read_from_secrets_manager()


e2e_secrets_backend()
