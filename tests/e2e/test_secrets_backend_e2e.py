"""Secrets Manager as Airflow's secrets backend (issue 15, point 3), on the `secrets`
shape: stacks/dev.yaml with `airflow.secrets_backend: { components: [worker] }`
(harness/secrets_backend.py). The workers get the backend and their task role may read
`airflow/connections/*` and `airflow/variables/*`; the packed core task (api-server,
scheduler, dag-processor, triggerer) gets neither.

* A DAG on a worker reads a connection and a variable that exist only in the emulated
  Secrets Manager (not in the metadata database, not in the environment); the emulator
  records the worker's GetSecretValue calls as authorized by the worker's own role.
* The same lookup from a component without the permission - the scheduler's container,
  with the backend configured as the workers have it - is refused by the emulator's IAM
  evaluation (DENIED ... (CoreTaskRole) ... secretsmanager:GetSecretValue), and Airflow
  finds no such variable.

Run (as root, once tests/run-all.sh has installed everything):
    $AIRFLOW_STACK_VENV/bin/pytest -s -p no:cacheprovider tests/e2e -k secrets_backend
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
import time

import pytest

CONN_ID = "e2e_sm_conn"
VARIABLE = "e2e_sm_variable"
CONN_SECRET = f"airflow/connections/{CONN_ID}"
VARIABLE_SECRET = f"airflow/variables/{VARIABLE}"
BACKEND_ENV = ("AIRFLOW__SECRETS__BACKEND", "AIRFLOW__SECRETS__BACKEND_KWARGS")

secrets_only = pytest.mark.parametrize("stack", ["secrets"], indirect=True)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _random(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits + "@:/#%+ ") for _ in range(n))


@pytest.fixture(scope="session")
def stored(stack) -> dict:
    """The connection (as the provider's JSON form) and the variable, written into the
    emulated Secrets Manager by the operator, before any DAG asks for them."""
    values = {"password": _random(40), "variable": _random(24)}
    stack.sm.create_secret(Name=CONN_SECRET, SecretString=json.dumps({
        "conn_type": "generic", "host": "sm.example.invalid", "login": "sm-user",
        "password": values["password"]}))
    stack.sm.create_secret(Name=VARIABLE_SECRET, SecretString=values["variable"])
    return values


def _secret_calls(stack, role: str) -> list[dict]:
    """Every GetSecretValue a container signing as `role` made on the backend's prefixes."""
    return [c for c in stack.aws.calls()
            if f"({role})" in c["identity"] and c["action"] == "secretsmanager:GetSecretValue"
            and (":secret:airflow/connections/" in c["resource"]
                 or ":secret:airflow/variables/" in c["resource"])]


@secrets_only
def test_a_worker_reads_a_connection_and_a_variable_from_secrets_manager(stack, airflow, stored):
    # Only the workers are configured to look there.
    for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
        env = stack.containers_named(name)[0].env
        assert not any(k in env for k in BACKEND_ENV), f"{name} has the secrets backend"
    worker_env = stack.containers_named("worker")[0].env
    assert worker_env["AIRFLOW__SECRETS__BACKEND"].endswith(".SecretsManagerBackend")
    # Neither exists anywhere but in Secrets Manager.
    for path in (f"/api/v2/connections/{CONN_ID}", f"/api/v2/variables/{VARIABLE}"):
        with pytest.raises(Exception, match="404"):
            airflow.get(path)

    airflow.wait_dags(["e2e_secrets_backend"], timeout=180)
    run_id = airflow.trigger("e2e_secrets_backend")
    started = time.monotonic()
    state = None
    while time.monotonic() - started < 180:
        state = airflow.run_state("e2e_secrets_backend", run_id)
        if state in ("success", "failed"):
            break
        time.sleep(1)
    took = time.monotonic() - started
    if state != "success":
        # Only then: a log fetched while it is not yet in S3 is asked of the worker's log
        # server, which nothing may reach (README, "Task isolation").
        log = airflow.task_log("e2e_secrets_backend", run_id, "read_from_secrets_manager", 1)
        raise AssertionError(f"e2e_secrets_backend ended {state} after {took:.0f}s:\n{log[-3000:]}")
    got = airflow.xcom("e2e_secrets_backend", run_id, "read_from_secrets_manager")
    assert got == {"login": "sm-user", "host": "sm.example.invalid",
                   "password_sha256": _digest(stored["password"]),
                   "variable_sha256": _digest(stored["variable"])}, got
    print(f"[e2e] secrets: DAG reading from Secrets Manager done in {took:.1f}s", flush=True)

    # Read by the worker itself, with its own role, and authorized.
    worker_calls = _secret_calls(stack, "WorkerTaskRole")
    for name in (CONN_SECRET, VARIABLE_SECRET):
        mine = [c for c in worker_calls if f":secret:{name}" in c["resource"]]
        assert mine and all(c["allowed"] for c in mine), (name, worker_calls)
    # The components without the backend never looked there, and nobody looked up the
    # stack's own connection there (connections_lookup_pattern): remote logging asks
    # for aws_default on every upload.
    assert not _secret_calls(stack, "CoreTaskRole")
    assert not [c for c in worker_calls if ":secret:airflow/connections/aws_default" in c["resource"]], \
        worker_calls
    stack.fail_on_violations("after the DAG read from Secrets Manager")


@secrets_only
def test_a_component_without_the_permission_cannot_read_them(stack, stored):
    """The scheduler's container (core task role, no Secrets Manager statement), with the
    backend configured as the workers have it: the emulator refuses the call, and Airflow
    falls through to the metadata database, where the variable is not."""
    scheduler = stack.containers_named("scheduler")[0]
    worker_env = stack.containers_named("worker")[0].env
    env = {**scheduler.env, **{k: worker_env[k] for k in BACKEND_ENV}}
    airflow_bin = str(stack.airflow_venv / "bin" / "airflow")
    with stack.expect_violations() as expected:
        result = scheduler.task.host.run([airflow_bin, "variables", "get", VARIABLE], env=env,
                                         timeout=180, user=scheduler.user,
                                         cwd=str(scheduler.home))
        denied = stack.wait_for_violation(
            rf"DENIED .*\(CoreTaskRole\).*secretsmanager:GetSecretValue .*"
            rf":secret:{VARIABLE_SECRET}", 30, expected)
    print(f"[e2e] secrets: {denied}", flush=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"the scheduler's role read the variable:\n{output[-2000:]}"
    assert stored["variable"] not in output
    assert "does not exist" in output, output[-2000:]
    # Nothing else was refused.
    assert all("(CoreTaskRole)" in v and "GetSecretValue" in v for v in expected.found), \
        expected.found


@secrets_only
@pytest.mark.mutation
def test_mutation_a_worker_without_its_statement_fails_the_dag(stack, airflow, stored):
    """The worker's task role without its Secrets Manager statement (the defect the
    synth tests guard against): the task fails, and the emulator names the refused call."""
    policies = stack.task_role_policies("worker")
    for policy in policies:
        policy["Statement"] = [s for s in policy["Statement"]
                               if "secretsmanager:GetSecretValue" not in json.dumps(s["Action"])]
    assert policies != stack.task_role_policies("worker"), "the worker's role has no such statement"
    with stack.expect_violations() as expected:
        stack.mutate("worker", task_policies=policies)
        run_id = airflow.trigger("e2e_secrets_backend")
        started, state = time.monotonic(), None
        while time.monotonic() - started < 180 and state not in ("success", "failed"):
            time.sleep(1)
            state = airflow.run_state("e2e_secrets_backend", run_id)
        denied = stack.wait_for_violation(
            rf"DENIED .*\(WorkerTaskRole\).*secretsmanager:GetSecretValue .*:secret:{CONN_SECRET}",
            30, expected)
        # Stopped before the block ends, so that every call the mutated worker makes (its
        # log upload looks aws_default up there too) is counted here; the next test that
        # is not a mutation test starts it again as the template defines it.
        stack.stop_service("worker")
    print(f"[e2e] secrets (mutation): {denied}", flush=True)
    assert state == "failed", f"e2e_secrets_backend ended {state} without the worker's permission"
    assert all("(WorkerTaskRole)" in v and "GetSecretValue" in v for v in expected.found), \
        expected.found
