"""What task code on a Celery worker can see of the stack's keys (issue 11): for each
setting that must stay off workers, the SHA-256 of the value the task's environment and
Airflow's configuration hold (None when unset). The test compares them with the real
secrets; the values themselves never leave the task."""

import hashlib
import os

import pendulum
from airflow.sdk import dag, task

WATCHED = {
    "AIRFLOW__CORE__FERNET_KEY": ("core", "fernet_key"),
    "AIRFLOW__API__SECRET_KEY": ("api", "secret_key"),
    "AIRFLOW__API_AUTH__JWT_SECRET": ("api_auth", "jwt_secret"),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": ("database", "sql_alchemy_conn"),
}


def _digest(value):
    return hashlib.sha256(value.encode()).hexdigest() if value else None


@dag(dag_id="e2e_isolation", schedule=None, start_date=pendulum.datetime(2025, 1, 1),
     catchup=False, tags=["e2e"])
def e2e_isolation():
    @task
    def probe() -> dict:
        from airflow.configuration import conf

        seen = {}
        for env_name, (section, key) in WATCHED.items():
            seen[env_name] = {
                "env": _digest(os.environ.get(env_name)),
                "config": _digest(conf.get(section, key, fallback=None)),
            }
        print("E2E-MARKER e2e_isolation.probe")
        return seen

    probe()


e2e_isolation()
