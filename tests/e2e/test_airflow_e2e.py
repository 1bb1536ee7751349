"""End to end: the container definitions of the synthesized stack run as real Airflow
processes (api-server, scheduler, dag-processor, triggerer, celery workers, Flower in
prod), each ECS task in its own network namespace behind the template's security groups,
each AWS call made with its own role's credentials and authorized by the emulator, each
container started the way the official image starts it. PostgreSQL (TLS) stands in for
RDS/Aurora, redis-server for the Redis task or ElastiCache (TLS + AUTH), the patched AWS
emulator for S3, Secrets Manager and CloudWatch Logs; the secrets are written by the real
custom-resource Lambda binary. DAGs go in with `airflow-stack dags push`.

Every test here runs for stacks/dev.yaml and stacks/prod.yaml unless it names a shape.

Run with `bash tests/run-all.sh` (installs everything), or, once that has run:
    $AIRFLOW_STACK_VENV/bin/pytest -s tests/e2e
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import string
import time

import pytest

from harness.api import ApiError

DAGS = ["e2e_python", "e2e_xcom", "e2e_deferrable", "e2e_connection"]
CONN_ID = "e2e_secret_conn"
# The database user every Airflow component connects as (the contract's
# AIRFLOW_DATABASE_USER); the master is for the migration alone.
AIRFLOW_DB_USER = "airflow_app"
TERMINAL = {"success", "failed"}
# The keys task code must not hold (issue 11, defect 3).
WORKER_FORBIDDEN = ["AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY",
                    "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
# Worker sizing rule (README, "Worker size"): idle + concurrency x per-task memory must fit
# in this share of the task's memory; the rest is headroom for page cache and spikes.
SIZING_SHARE = 0.8

dev_only = pytest.mark.parametrize("stack", ["dev"], indirect=True)
prod_only = pytest.mark.parametrize("stack", ["prod"], indirect=True)


def _run_all(airflow, dag_ids, timeout, watch_deferred=None, conf=None):
    """Trigger each DAG, wait for every run to end; returns {dag_id: (run_id, state)} and
    the set of task ids seen in state `deferred`."""
    runs = {d: airflow.trigger(d, conf) for d in dag_ids}
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


@pytest.fixture(scope="session")
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

    results, deferred = _run_all(airflow, DAGS, timeout=300, watch_deferred="e2e_deferrable")
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
                       f"JOIN pg_stat_ssl s USING (pid) WHERE a.usename = '{AIRFLOW_DB_USER}'").strip()
    total, encrypted = (int(x) for x in ssl.split("|"))
    assert total > 0 and total == encrypted, f"airflow DB sessions: {total}, over TLS: {encrypted}"

    # Every task's log is readable through the API and comes from the S3 remote-log folder.
    remote = stack.container_env("api-server")[0]["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"]
    assert remote == f"s3://{stack.bucket}/logs", remote
    checked = 0
    for dag_id, (run_id, _) in results.items():
        for ti in airflow.task_instances(dag_id, run_id):
            task_id, try_number = ti["task_id"], ti["try_number"]
            assert ti["state"] == "success", ti
            _wait_log_object(stack, dag_id, run_id, task_id, try_number)
            log = airflow.task_log(dag_id, run_id, task_id, try_number)
            assert f"s3://{stack.bucket}/logs/dag_id={dag_id}" in log, (
                f"{dag_id}.{task_id}: log not read from S3:\n{log[:2000]}")
            if task_id != "wait":
                assert f"E2E-MARKER {dag_id}.{task_id}" in log, f"{dag_id}.{task_id}:\n{log[:3000]}"
            checked += 1
    assert checked == 6, checked


def _s3_log_keys(stack) -> list[str]:
    return [o["Key"] for page in stack.s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.bucket, Prefix="logs/") for o in page.get("Contents", [])]


def _wait_log_object(stack, dag_id, run_id, task_id, try_number, timeout=30) -> None:
    """The worker uploads the log when the task process has ended, which can be a moment
    after the state change the API reports."""
    want = f"logs/dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={try_number}.log"
    deadline = time.monotonic() + timeout
    while want not in (keys := _s3_log_keys(stack)) and time.monotonic() < deadline:
        time.sleep(1)
    assert want in keys, f"no s3://{stack.bucket}/{want}; objects under logs/: {keys}"


def _wait_task_state(airflow, dag_id, run_id, task_id, state, timeout) -> dict:
    deadline = time.monotonic() + timeout
    ti: dict = {}
    while time.monotonic() < deadline:
        ti = next((t for t in airflow.task_instances(dag_id, run_id) if t["task_id"] == task_id), {})
        if ti.get("state") == state:
            return ti
        time.sleep(1)
    raise AssertionError(f"{dag_id}.{task_id} not {state} after {timeout}s: {ti}")


@dev_only
def test_a_running_tasks_log_is_not_served_by_its_worker_and_shows_from_s3_after(stack, airflow):
    """What a user sees of a task's log while it runs on a worker (README, "Task
    isolation"): the api-server asks that worker's log server, the worker's security
    group drops the connection as AWS would (no rule: workers cannot check log tokens),
    and the API still answers, saying the served log could not be read; once the task
    ends, its whole log is read from S3."""
    airflow.wait_dags(["e2e_long"], timeout=180)
    run_id = airflow.trigger("e2e_long")
    ti = _wait_task_state(airflow, "e2e_long", run_id, "hold", "running", timeout=180)
    started = time.monotonic()
    log = airflow.task_log("e2e_long", run_id, "hold", ti["try_number"])
    took = time.monotonic() - started
    print(f"[e2e]   a running task's log: answered after {took:.1f}s", flush=True)
    refused = [r for r in stack.refused_by_design_seen() if "port 8793" in r]
    print(f"[e2e]   refused by design: {refused}", flush=True)
    try:
        assert "Could not read served logs" in log, log[:3000]
        assert "E2E-MARKER e2e_long.hold start" not in log, "served from the worker:\n" + log[:3000]
        assert refused, "the api-server never tried the worker's log server"
    finally:
        airflow.set_variable("e2e_long_release", run_id)
    _wait_task_state(airflow, "e2e_long", run_id, "hold", "success", timeout=180)
    _wait_log_object(stack, "e2e_long", run_id, "hold", ti["try_number"])
    log = airflow.task_log("e2e_long", run_id, "hold", ti["try_number"])
    assert f"s3://{stack.bucket}/logs/dag_id=e2e_long" in log, log[:3000]
    for marker in ("start", "released"):
        assert f"E2E-MARKER e2e_long.hold {marker}" in log, log[:3000]


# --- task isolation: what task code on a worker can read --------------------------------

def _real_secret_digests(stack) -> dict[str, str]:
    """SHA-256 of the value each forbidden setting has in the scheduler (which holds all)."""
    env, _ = stack.container_env("scheduler")
    return {name: hashlib.sha256(env[name].encode()).hexdigest() for name in WORKER_FORBIDDEN}


def _isolation_leaks(stack, airflow) -> list[str]:
    results, _ = _run_all(airflow, ["e2e_isolation"], timeout=180)
    run_id, state = results["e2e_isolation"]
    assert state == "success", f"e2e_isolation {state}\n{stack.dump_logs(60)}"
    seen = airflow.xcom("e2e_isolation", run_id, "probe")
    real = _real_secret_digests(stack)
    return [f"{where} {name}" for name in WORKER_FORBIDDEN for where in ("env", "config")
            if seen[name][where] == real[name]]


def test_task_code_on_a_worker_holds_no_key_and_no_database_url(stack, airflow):
    """Airflow 3 task isolation: DAG code on a worker reaches Airflow only through the
    Execution API. It must not find the JWT secret (mint tokens), `[api] secret_key`
    (forge sessions and log tokens), the Fernet key or the database URL."""
    airflow.wait_dags(["e2e_isolation"], timeout=180)
    leaks = _isolation_leaks(stack, airflow)
    assert not leaks, f"worker: task code can read {leaks}"


@dev_only
@pytest.mark.mutation
def test_mutation_worker_with_signing_keys_leaks_them_to_task_code(stack, airflow):
    """The isolation check can fail: a worker given the keys it used to get (defect 3)
    exposes them to task code."""
    airflow.wait_dags(["e2e_isolation"], timeout=180)
    env, _ = stack.container_env("scheduler")
    keys = {k: env[k] for k in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY",
                                "AIRFLOW__API_AUTH__JWT_SECRET")}
    with stack.expect_violations():
        stack.mutate("worker", env_override=keys)
        leaks = _isolation_leaks(stack, airflow)
    assert sorted(leaks) == sorted(f"{w} {k}" for k in keys for w in ("env", "config")), leaks


@dev_only
@pytest.mark.mutation
def test_mutation_worker_with_the_database_url_is_blocked_at_start(stack):
    """Defect 3 re-introduced: a worker that receives the database URL again (as every
    container did) tries the database at start-up (the image's `airflow db check`), and
    no security group lets a worker reach PostgreSQL."""
    _blocked_with_the_database_url(stack, "worker")


def _blocked_with_the_database_url(stack, container: str) -> None:
    """Restarts `container` with the database URL (the scheduler's) and waits for its
    start-up's connection to PostgreSQL to be dropped by the security groups."""
    env, _ = stack.container_env("scheduler")
    with stack.expect_violations() as e:
        stack.mutate(container, wait=False, env_override={
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]})
        found = stack.wait_for_violation(rf"^BLOCKED {container}.* -> database .*port 5432",
                                         120, e)
    print(f"[e2e]   mutation caught: {found}", flush=True)


# --- S3 permissions Airflow really uses ------------------------------------------------

def _old_s3_policies(policies: list[dict]) -> list[dict]:
    """The task-role policy as it was before issue 11: s3:ListBucket only with
    `StringLike` on s3:prefix, and no empty prefix."""
    changed = 0
    for doc in policies:
        for st in doc["Statement"]:
            cond = st.get("Condition", {})
            if "StringLikeIfExists" in cond:
                prefixes = [p for p in cond.pop("StringLikeIfExists")["s3:prefix"] if p]
                cond["StringLike"] = {"s3:prefix": prefixes}
                changed += 1
    assert changed, f"no s3:ListBucket StringLikeIfExists statement in {policies}"
    return policies


@dev_only
@pytest.mark.mutation
def test_mutation_s3_prefix_condition_hides_the_dag_bundle(stack):
    """Defect 1 re-introduced in the dag-processor's role: S3DagBundle's first call,
    HeadBucket, is s3:ListBucket without a prefix, which the old condition denies."""
    policies = _old_s3_policies(stack.task_role_policies("dag-processor"))
    with stack.expect_violations() as e:
        stack.mutate("dag-processor", task_policies=policies, wait=False)
        found = stack.wait_for_violation(
            r"^DENIED .*dag-processor.*: s3:ListBucket on arn:aws:s3:::.*HeadBucket", 180, e)
    print(f"[e2e]   mutation caught: {found}", flush=True)


@dev_only
@pytest.mark.mutation
def test_mutation_s3_prefix_condition_loses_task_logs(stack, airflow):
    """Defect 1 in the worker's role: remote logging first asks whether a log exists
    (HeadObject on a missing key), which S3 answers 403 to a caller without
    s3:ListBucket, so the log is never uploaded."""
    policies = _old_s3_policies(stack.task_role_policies("worker"))
    with stack.expect_violations() as e:
        stack.mutate("worker", task_policies=policies)
        results, _ = _run_all(airflow, ["e2e_python"], timeout=180)
        run_id, state = results["e2e_python"]
        found = stack.wait_for_violation(
            r"^DENIED .*worker.*: s3:(GetObject|ListBucket) .*HeadObject", 60, e)
    print(f"[e2e]   mutation caught: {found}", flush=True)
    key = f"logs/dag_id=e2e_python/run_id={run_id}/task_id=hello/attempt=1.log"
    time.sleep(5)
    assert key not in _s3_log_keys(stack), "the log was uploaded although HeadObject was denied"


# --- Flower (prod): only the broker ---------------------------------------------------

@prod_only
def test_flower_serves_with_the_broker_only(stack):
    env, _ = stack.container_env("flower")
    assert not set(WORKER_FORBIDDEN) & set(env), sorted(set(WORKER_FORBIDDEN) & set(env))
    c = stack.containers_named("flower")[0]
    ok, out = stack.run_health_check(c)
    assert ok, out


@prod_only
@pytest.mark.mutation
def test_mutation_flower_with_the_database_url_is_blocked_at_start(stack):
    """Defect 2 re-introduced: Flower with the database URL (and no path to PostgreSQL)
    never gets past the image's database check, so ECS never sees it healthy."""
    _blocked_with_the_database_url(stack, "flower")


# --- worker size ----------------------------------------------------------------------

def _worker_concurrency(stack) -> int:
    return int(stack.container_env("worker")[0]["AIRFLOW__CELERY__WORKER_CONCURRENCY"])


def measure_worker_memory(stack, airflow, width: int, seconds: int = 30) -> dict:
    """Runs `width` tasks at once; returns per worker task: idle RSS, the highest RSS
    while its tasks ran, how many ran there at that moment, and the per-task cost."""
    workers = [t for t in stack.tasks.values() if "worker" in t.containers]
    idle = {t.name: _rss(t) for t in workers}
    run_id = airflow.trigger("e2e_load", {"width": width, "seconds": seconds})
    busy = {t.name: (0.0, 0) for t in workers}
    deadline = time.monotonic() + seconds * 3 + 120
    state = None
    while time.monotonic() < deadline:
        tis = airflow.get(f"/api/v2/dags/e2e_load/dagRuns/{run_id}/taskInstances",
                          limit=500)["task_instances"]
        running: dict[str, int] = {}
        for ti in tis:
            if ti["task_id"] == "hold" and ti["state"] == "running":
                running[ti.get("hostname") or "?"] = running.get(ti.get("hostname") or "?", 0) + 1
        for t in workers:
            n = running.get(t.host.ip, 0)
            rss = _rss(t)
            if n and rss > busy[t.name][0]:
                busy[t.name] = (rss, n)
        state = airflow.run_state("e2e_load", run_id)
        if state in TERMINAL:
            break
        time.sleep(1)
    assert state == "success", f"e2e_load {state}\n{stack.dump_logs(60)}"
    out = {}
    for t in workers:
        rss, n = busy[t.name]
        assert n > 0, f"{t.name}: no task was seen running there"
        out[t.name] = {"idle_mib": idle[t.name], "busy_mib": rss, "tasks": n,
                       "per_task_mib": (rss - idle[t.name]) / n,
                       "limit_mib": t.host.memory_mib}
    return out


def _rss(task) -> float:
    stat = task.host.memory_stat()
    return stat.get("total_rss", stat.get("anon", 0)) / 2**20


def test_worker_memory_per_running_task_fits_the_worker_size(stack, airflow):
    """Measured, printed, and held against the sizing rule: with its full concurrency
    busy, a worker's memory stays under SIZING_SHARE of its task memory."""
    airflow.wait_dags(["e2e_load"], timeout=180)
    concurrency = _worker_concurrency(stack)
    workers = [t for t in stack.tasks.values() if "worker" in t.containers]
    figures = measure_worker_memory(stack, airflow, width=concurrency * len(workers))
    stack.timings.mark("worker memory measured")
    problems = []
    for name, f in figures.items():
        need = f["idle_mib"] + concurrency * f["per_task_mib"]
        print(f"[e2e] MEASURE {stack.shape} {name}: idle {f['idle_mib']:.0f} MiB, "
              f"{f['tasks']} tasks running {f['busy_mib']:.0f} MiB, "
              f"per running task {f['per_task_mib']:.0f} MiB; at concurrency {concurrency}: "
              f"{need:.0f} MiB of {f['limit_mib']} MiB", flush=True)
        stack.measurements.setdefault("worker_memory", {})[f"{stack.shape}/{name}"] = f
        if need > SIZING_SHARE * f["limit_mib"]:
            problems.append(f"{name}: idle {f['idle_mib']:.0f} MiB + {concurrency} x "
                            f"{f['per_task_mib']:.0f} MiB = {need:.0f} MiB > "
                            f"{SIZING_SHARE:.0%} of its {f['limit_mib']} MiB")
    assert not problems, "worker too small for its concurrency: " + "; ".join(problems)
    stack.fail_on_violations("while the workers ran at full concurrency")


# --- the harness can fail: one secret changed in one container ----------------------------

def _new_jwt_secret() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(86))


def _new_fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@dev_only
@pytest.mark.mutation
def test_jwt_secret_mismatch_between_scheduler_and_api_server_fails_the_run(stack, airflow):
    """The scheduler signs each task's Execution-API token with [api_auth] jwt_secret and
    the api-server checks it: give the api-server another secret and every task fails."""
    log = stack.workdir / "core.api-server.log"
    offset = log.stat().st_size
    stack.mutate("api-server", {"AIRFLOW__API_AUTH__JWT_SECRET": _new_jwt_secret()})
    airflow.login()
    results, _ = _run_all(airflow, ["e2e_python"], timeout=180)
    stack.timings.mark("mutation: api-server JWT")
    with open(log, "rb") as f:
        f.seek(offset)
        new_log = f.read().decode(errors="replace")
    assert results["e2e_python"][1] == "failed", f"expected a failed run, got {results}"
    assert "Signature verification failed" in new_log, new_log[-3000:]
    worker_log = (stack.workdir / "worker.worker.log").read_text(errors="replace")
    assert "Invalid auth token" in worker_log


@dev_only
@pytest.mark.mutation
def test_fernet_key_change_makes_stored_connections_unreadable(stack, airflow, connection_password):
    """A connection saved under one Fernet key cannot be read under another: the run that
    reads it fails while a run that needs no connection still succeeds."""
    stack.mutate("api-server", {"AIRFLOW__CORE__FERNET_KEY": _new_fernet_key()})
    airflow.login()
    results, _ = _run_all(airflow, ["e2e_connection", "e2e_python"], timeout=180)
    stack.timings.mark("mutation: api-server Fernet")
    assert results["e2e_python"][1] == "success", results
    assert results["e2e_connection"][1] == "failed", results


def test_airflow_connects_as_its_own_database_user_not_the_master(stack):
    """Airflow runs as a database user of its own (issue 19): every session of the
    services is that user's, it owns the database and every table (created by the
    migration as that user), it has no role attribute, and no running container holds
    the master password, which only the migration task gets."""
    _, urls = stack.template.one_of_type("Custom::AirflowConnectionUrls")
    db, master = urls["Properties"]["DbName"], urls["Properties"]["DbUser"]
    user = AIRFLOW_DB_USER

    def rows(sql: str, database: str = "postgres") -> list[str]:
        return stack.pg.sql(f"COPY ({sql}) TO STDOUT", db=database).split("\n")[:-1]

    sessions = rows("SELECT DISTINCT usename FROM pg_stat_activity "
                    f"WHERE datname = '{db}' AND backend_type = 'client backend'")
    assert sessions == [user], f"sessions of {db} by {sessions}"
    assert rows(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{db}'") == [user]
    owners = rows("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'", db)
    assert owners == [user], f"tables owned by {owners}"
    assert rows("SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
                f"WHERE rolname = '{user}'") == ["f\tf\tf\tf"]
    assert user != master
    master_password = stack.secret(urls["Properties"]["DatabaseSecretArn"]["Ref"], "password")
    for task in stack.tasks.values():
        for c in task.containers.values():
            held = [k for k, v in c.env.items() if master_password in v]
            assert not held, f"{task.name}/{c.name} holds the master password in {held}"


def test_a_later_migration_hands_over_what_the_master_owned(stack):
    """The upgrade path of the Airflow database user: a stack migrated before the user
    existed has its tables owned by the master. A table the master creates stands in
    for them; the next deploy's migration (run again here, with the services up, as a
    deploy runs it) gives it to the Airflow user, and a migration that finds the user
    already there succeeds."""
    _, urls = stack.template.one_of_type("Custom::AirflowConnectionUrls")
    db, master = urls["Properties"]["DbName"], urls["Properties"]["DbUser"]
    stack.pg.sql(f"SET ROLE \"{master}\"; CREATE TABLE e2e_owned_by_master (id int)", db=db)
    owner = "SELECT tableowner FROM pg_tables WHERE tablename = 'e2e_owned_by_master'"
    assert stack.pg.sql(f"COPY ({owner}) TO STDOUT", db=db).strip() == master
    stack.migrate()
    stack.timings.mark("second migration")
    try:
        assert stack.pg.sql(f"COPY ({owner}) TO STDOUT", db=db).strip() == AIRFLOW_DB_USER
    finally:
        stack.pg.sql("DROP TABLE e2e_owned_by_master", db=db)


@dev_only
def test_fernet_rotation_keeps_connections_readable(stack, airflow, connection_password):
    """A Fernet key rotation as the stack does it (issue 19): the deploy with a new
    `secrets.fernet_rotation` token (the real secrets Lambda's Update puts a new key in
    front of the old one, the services that read the key restart), `airflow-stack
    rotate-fernet`'s re-encryption task (the real `airflow rotate-fernet-key` against
    PostgreSQL), then the old key dropped. The connection is read by a task before,
    during and after; the stored value moves from the old key to the new one only when
    the task ran, and a value written in between is under the new key at once."""
    from cryptography.fernet import Fernet, InvalidToken

    digest = hashlib.sha256(connection_password.encode()).hexdigest()

    def read_by_a_task(when: str) -> None:
        results, _ = _run_all(airflow, ["e2e_connection"], timeout=180)
        run_id, state = results["e2e_connection"]
        assert state == "success", f"{when}: {results}"
        got = airflow.xcom("e2e_connection", run_id, "read_connection")
        assert got["password_sha256"] == digest, f"{when}: another password was read"

    def under(token: str, key: str) -> bool:
        try:
            Fernet(key.encode()).decrypt(token.encode())
            return True
        except InvalidToken:
            return False

    read_by_a_task("before the rotation")
    (old,) = stack.fernet_keys()
    stored = stack.stored_connection_password(CONN_ID)
    assert under(stored, old)

    stack.update_custom_resource("Custom::AirflowSecrets", {"FernetRotation": "e2e-rotation-1"})
    keys = stack.fernet_keys()
    assert len(keys) == 2 and keys[1] == old, "the old key must stay behind the new one"
    new = keys[0]
    readers = stack.fernet_readers()
    assert readers == ["api-server", "dag-processor", "scheduler", "triggerer"], readers
    for name in readers:
        stack.restart(name, wait=False)
    stack.wait_healthy(readers)
    stack.timings.mark("Fernet rotation: new key deployed")
    read_by_a_task("during the rotation (two keys, the value still under the old one)")
    assert stack.stored_connection_password(CONN_ID) == stored
    airflow.post("/api/v2/connections", {"connection_id": "e2e_rotation_new", "conn_type": "generic",
                                         "password": "written-between-the-halves"})
    assert under(stack.stored_connection_password("e2e_rotation_new"), new)

    code, tail = stack.reencrypt_fernet()
    stack.timings.mark("Fernet rotation: re-encryption task")
    assert code == 0, f"airflow rotate-fernet-key exited {code}:\n{tail}"
    stored = stack.stored_connection_password(CONN_ID)
    assert under(stored, new) and not under(stored, old), "not re-encrypted under the new key"

    stack.put_fernet_keys([new])
    for name in readers:
        stack.restart(name, wait=False)
    stack.wait_healthy(readers)
    read_by_a_task("after the rotation (the new key alone)")
    airflow.delete("/api/v2/connections/e2e_rotation_new")
    stack.timings.mark("Fernet rotation: old key dropped")


# --- Redis on Fargate: one broker behind one name, also during a deployment --------------

@dev_only
def test_redis_deployment_never_runs_two_brokers_and_celery_recovers(stack, airflow):
    """A new Redis task (after a task definition change) replaces the old one the way ECS
    does it with the template's DeploymentConfiguration; `redis.<namespace>` must never
    name two brokers at once (Celery clients would split the queue between them), and
    the scheduler and worker must carry on with the new one."""
    fqdn = f"redis.{stack.namespace}"
    events = stack.roll_out("RedisService")
    print(f"[e2e]   Redis deployment: {events}; {fqdn} had at most "
          f"{stack.cloud_map_peak[fqdn]} address(es)", flush=True)
    assert stack.cloud_map_peak[fqdn] == 1, (
        f"RedisService: {fqdn} named {stack.cloud_map_peak[fqdn]} brokers at once during "
        f"the deployment ({events})")
    results, _ = _run_all(airflow, ["e2e_python"], timeout=300)
    assert results["e2e_python"][1] == "success", f"{results}\n{stack.dump_logs(40)}"
    stack.fail_on_violations("after the Redis deployment")


@dev_only
@pytest.mark.mutation
def test_mutation_redis_start_first_runs_two_brokers(stack):
    """Defect 6 re-introduced (100 % / 200 %, as every service had): ECS starts the new
    Redis before it stops the old, and two brokers answer the one Cloud Map name."""
    fqdn = f"redis.{stack.namespace}"
    events = stack.roll_out("RedisService", {"MinimumHealthyPercent": 100, "MaximumPercent": 200})
    print(f"[e2e]   mutated Redis deployment: {events}; {fqdn} had at most "
          f"{stack.cloud_map_peak[fqdn]} address(es)", flush=True)
    assert stack.cloud_map_peak[fqdn] == 2, (events, stack.cloud_map_peak)


# --- what AWS would have refused: nothing ------------------------------------------------

def test_every_aws_call_was_authorized_by_its_own_role_and_no_port_was_blocked(stack):
    """The proof is only as good as its strictness: every identity's calls (printed per
    identity and action) were allowed by its own role, no connection was dropped by a
    security group, no task hit its memory limit, no container went unhealthy - apart
    from what the mutation tests above provoked on purpose, and the one path the stack
    leaves closed on purpose (printed; `LocalStack.refused_by_design`)."""
    calls = stack.aws.calls()
    summary: dict[str, dict[str, int]] = {}
    for call in calls:
        per = summary.setdefault(call["identity"], {})
        per[call["action"]] = per.get(call["action"], 0) + 1
    print(f"[e2e] {stack.shape}: AWS calls by identity (all authorized unless listed below):")
    for identity in sorted(summary):
        actions = ", ".join(f"{a} x{n}" for a, n in sorted(summary[identity].items()))
        print(f"[e2e]   {identity}: {actions}", flush=True)
    containers = {f"{t.name}/{c}" for t in stack.tasks.values() for c in t.containers}
    with_role = {c for c in containers if any(i.startswith(c + " (") for i in summary)}
    print(f"[e2e]   containers that called AWS: {sorted(with_role)}", flush=True)
    assert calls, "no AWS call was recorded: the identities are not in use"
    for line in stack.refused_by_design_seen():
        print(f"[e2e]   dropped, as the stack intends: {line}", flush=True)
    stack.fail_on_violations(f"{stack.shape}: over the whole run")
