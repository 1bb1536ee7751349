"""End to end: the container definitions of the synthesized stack run as real Airflow
processes (api-server, scheduler, dag-processor, triggerer, celery worker) against local
PostgreSQL (TLS), redis-server and moto (S3, Secrets Manager), with the secrets written
by the real custom-resource Lambda binary. DAGs go in with `airflow-stack dags push`.

Run with `bash tests/run-all.sh` (installs everything), or, once that has run:
    $AIRFLOW_STACK_VENV/bin/pytest -s tests/e2e
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from pathlib import Path

import pytest

from harness.api import ApiError

DAGS = ["e2e_python", "e2e_xcom", "e2e_deferrable", "e2e_connection"]
CONN_ID = "e2e_secret_conn"
TERMINAL = {"success", "failed"}


def _run_all(airflow, dag_ids, timeout, watch_deferred=None):
    """Trigger each DAG, wait for every run to end; returns {dag_id: (run_id, state)} and
    the set of task ids seen in state `deferred`."""
    runs = {d: airflow.trigger(d) for d in dag_ids}
    states: dict[str, str] = {}
    deferred_seen: set[str] = set()
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        for d, run_id in runs.items():
            if states.get(d) in TERMINAL:
                continue
            states[d] = airflow.run_state(d, run_id)
            if d == watch_deferred:
                for ti in airflow.task_instances(d, run_id):
                    if ti["state"] == "deferred":
                        deferred_seen.add(ti["task_id"])
        if all(states.get(d) in TERMINAL for d in runs):
            break
        time.sleep(1)
    return {d: (runs[d], states.get(d)) for d in runs}, deferred_seen


@pytest.fixture(scope="module")
def connection_password(airflow) -> str:
    password = "".join(secrets.choice(string.ascii_letters + string.digits + "@:/#%+ ")
                       for _ in range(40))
    try:
        airflow.delete(f"/api/v2/connections/{CONN_ID}")
    except ApiError as e:
        assert e.status == 404, e
    airflow.post("/api/v2/connections", {
        "connection_id": CONN_ID, "conn_type": "generic", "host": "e2e.example.invalid",
        "login": "e2e-user", "password": password,
    })
    return password


def test_dags_run_to_success_with_remote_logs(stack, airflow, connection_password):
    parsed = airflow.wait_dags(DAGS, timeout=180)
    print(f"[e2e]   DAGs parsed from the S3 bundle after {parsed:.1f}s", flush=True)

    results, deferred = _run_all(airflow, DAGS, timeout=240, watch_deferred="e2e_deferrable")
    stack.timings.mark("DAGs done")
    failed = {d: s for d, (_, s) in results.items() if s != "success"}
    assert not failed, f"DAG runs did not succeed: {failed}\n{stack.dump_logs(80)}"

    # The sensor really deferred (so the triggerer ran it), then succeeded.
    assert "wait" in deferred, "e2e_deferrable.wait was never seen in state 'deferred'"

    # XCom and the connection's password went through the Execution API intact.
    xcom_run = results["e2e_xcom"][0]
    assert airflow.xcom("e2e_xcom", xcom_run, "consume") == 10 * len("airflow")
    got = airflow.xcom("e2e_connection", results["e2e_connection"][0], "read_connection")
    assert got["login"] == "e2e-user" and got["host"] == "e2e.example.invalid", got
    assert got["password_sha256"] == hashlib.sha256(connection_password.encode()).hexdigest()
    # ... and it is stored Fernet-encrypted in the metadata database.
    row = stack.pg.sql(f"SELECT is_encrypted, password FROM connection WHERE conn_id = '{CONN_ID}'",
                       db="airflow").strip()
    assert row.startswith("t|") and connection_password not in row, "connection stored in plaintext"

    # The metadata database is reached over TLS (DbSslMode "require"; the local server also
    # rejects plain TCP), by every Airflow container that holds a connection now.
    ssl = stack.pg.sql("SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a "
                       "JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'airflow'").strip()
    total, encrypted = (int(x) for x in ssl.split("|"))
    assert total > 0 and total == encrypted, f"airflow DB sessions: {total}, over TLS: {encrypted}"

    # Every task's log is readable through the API and comes from the S3 remote-log folder.
    remote = stack.container_env("api-server")[0]["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"]
    assert remote == f"s3://{stack.bucket}/logs", remote
    def s3_log_keys() -> list[str]:
        return [o["Key"] for page in stack.s3.get_paginator("list_objects_v2").paginate(
            Bucket=stack.bucket, Prefix="logs/") for o in page.get("Contents", [])]

    checked = 0
    for dag_id, (run_id, _) in results.items():
        for ti in airflow.task_instances(dag_id, run_id):
            task_id, try_number = ti["task_id"], ti["try_number"]
            assert ti["state"] == "success", ti
            # The worker uploads the log when the task process has ended, which can be a
            # moment after the state change the API reports.
            want = f"logs/dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={try_number}.log"
            deadline = time.monotonic() + 30
            while want not in (keys := s3_log_keys()) and time.monotonic() < deadline:
                time.sleep(1)
            assert want in keys, f"no s3://{stack.bucket}/{want}; objects under logs/: {keys}"
            log = airflow.task_log(dag_id, run_id, task_id, try_number)
            assert f"s3://{stack.bucket}/logs/dag_id={dag_id}" in log, (
                f"{dag_id}.{task_id}: log not read from S3:\n{log[:2000]}")
            if task_id != "wait":
                assert f"E2E-MARKER {dag_id}.{task_id}" in log, f"{dag_id}.{task_id}:\n{log[:3000]}"
            checked += 1
    assert checked == 6, checked


# --- the harness can fail: one secret changed in one container ----------------------------

class _Mutated:
    """Restart one container with some of its environment changed; restore it after."""

    def __init__(self, stack, airflow, name: str, override: dict[str, str]):
        self.stack, self.airflow, self.name, self.override = stack, airflow, name, override

    def __enter__(self):
        original = self.stack.container_env(self.name)[0]
        for key, value in self.override.items():
            assert original[key] != value, f"{key} is not changed by the mutation"
        self.log = Path(self.stack.workdir / f"{self.name}.log")
        self.offset = self.log.stat().st_size
        self.stack.stop_service(self.name)
        self.stack.start_service(self.name, self.override)
        self.stack.wait_healthy([self.name])
        self.airflow.login()
        return self

    def new_log(self) -> str:
        with open(self.log, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")

    def __exit__(self, *exc):
        self.stack.stop_service(self.name)
        self.stack.start_service(self.name)
        self.stack.wait_healthy([self.name])
        self.airflow.login()
        return False


def _new_jwt_secret() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(86))


def _new_fernet_key() -> str:
    import base64
    import os
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def test_jwt_secret_mismatch_between_scheduler_and_api_server_fails_the_run(stack, airflow):
    """The scheduler signs each task's Execution-API token with [api_auth] jwt_secret and
    the api-server checks it: give the api-server another secret and every task fails."""
    with _Mutated(stack, airflow, "api-server",
                  {"AIRFLOW__API_AUTH__JWT_SECRET": _new_jwt_secret()}) as m:
        results, _ = _run_all(airflow, ["e2e_python"], timeout=120)
        stack.timings.mark("mutation: api-server JWT")
        assert results["e2e_python"][1] != "success", results
        assert results["e2e_python"][1] == "failed", f"expected a failed run, got {results}"
        assert "Signature verification failed" in m.new_log(), m.new_log()[-3000:]
    worker_log = (stack.workdir / "worker.log").read_text(errors="replace")
    assert "Invalid auth token" in worker_log


def test_fernet_key_change_makes_stored_connections_unreadable(stack, airflow, connection_password):
    """A connection saved under one Fernet key cannot be read under another: the run that
    reads it fails while a run that needs no connection still succeeds."""
    with _Mutated(stack, airflow, "api-server",
                  {"AIRFLOW__CORE__FERNET_KEY": _new_fernet_key()}):
        results, _ = _run_all(airflow, ["e2e_connection", "e2e_python"], timeout=120)
        stack.timings.mark("mutation: api-server Fernet")
    assert results["e2e_python"][1] == "success", results
    assert results["e2e_connection"][1] == "failed", results


def test_worker_needs_neither_the_jwt_secret_nor_the_fernet_key(stack, airflow, connection_password):
    """Airflow 3 workers talk to the Execution API with the token the scheduler minted and
    read connections decrypted by the api-server: a worker with a different JWT secret and
    Fernet key still runs everything (pins the behaviour FINDINGS.md relies on)."""
    with _Mutated(stack, airflow, "worker",
                  {"AIRFLOW__API_AUTH__JWT_SECRET": _new_jwt_secret(),
                   "AIRFLOW__CORE__FERNET_KEY": _new_fernet_key()}):
        results, _ = _run_all(airflow, ["e2e_connection", "e2e_python"], timeout=120)
        stack.timings.mark("mutation: worker JWT+Fernet")
    assert {d: s for d, (_, s) in results.items()} == {"e2e_connection": "success",
                                                       "e2e_python": "success"}, results
