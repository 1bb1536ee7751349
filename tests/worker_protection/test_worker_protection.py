"""The worker side of "autoscaling never stops a busy worker": a real Celery worker (prefork,
concurrency 2, prefetch 1, acks late) with src/stack/worker/airflow_stack_worker.py, a
redis-server broker and a fake ECS: agent, task metadata endpoint (as on Fargate: no
taskWithTags) and the ECS API's ListTagsForResource, reached through AWS_ENDPOINT_URL
(see conftest.py).

Timings are the FAST ones of conftest.py: protection renewed every 2 s, cleared after 3 s
idle, tags polled every 0.5 s."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import (ACCESS_KEY_ID, DRAIN_TAG, FAST, MODULE_DIR, SECRET_ACCESS_KEY,
                      wait_for)

GRACE = float(FAST["AIRFLOW_STACK_IDLE_GRACE_SECONDS"])


def on_ecs(ecs):
    """What ECS gives a worker container, with the task role's credentials as keys in the
    environment (botocore's default chain; on Fargate the container credentials
    endpoint) and the ECS API at the fake. The default region is not the task's: the
    module must take the region from the task ARN."""
    return {**FAST, "ECS_AGENT_URI": ecs.agent_uri,
            "ECS_CONTAINER_METADATA_URI_V4": ecs.metadata_uri,
            "AWS_ENDPOINT_URL": ecs.api_endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": "us-west-2",
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}


def puts_off(ecs):
    return [at for at, enabled, _ in ecs.puts if not enabled]


def wait_unprotected(ecs, worker, timeout=GRACE + 6):
    try:
        return wait_for("PUT ProtectionEnabled=false", lambda: puts_off(ecs), timeout)[0]
    except AssertionError as exc:
        raise AssertionError(f"{exc}; PUTs {ecs.puts}\n{worker.log()}") from None


def test_protected_before_the_body_runs_renewed_while_busy_cleared_after_grace(ecs, start_worker):
    worker = start_worker(on_ecs(ecs))
    assert ecs.puts == [], "an idle worker must not touch protection"

    worker.send("long", 7)
    start = worker.wait_record("long", "start")
    end = worker.wait_record("long", "end")
    assert start["protected"] is True, "the task body ran unprotected"
    first = ecs.puts[0]
    assert first[1] is True and first[0] <= start["at"], ecs.puts
    assert first[2] == 1, "ExpiresInMinutes comes from AIRFLOW_STACK_PROTECTION_MINUTES"

    during = [p for p in ecs.puts if first[0] <= p[0] <= end["at"]]
    assert all(enabled for _, enabled, _ in during), f"unprotected while busy: {ecs.puts}"
    renewals = len(during) - 1
    assert renewals >= 2, f"a 7 s task with a 2 s renewal saw {renewals} renewals: {ecs.puts}"

    off = wait_unprotected(ecs, worker)
    idle = off - end["at"]
    assert GRACE - 0.5 <= idle <= GRACE + 3, f"cleared {idle:.1f}s after the task ended"
    assert not ecs.enabled
    time.sleep(1.5)
    assert len(puts_off(ecs)) == 1 and ecs.puts[-1][1] is False, ecs.puts
    log = worker.log()
    assert "protected (task received)" in log and "unprotected (idle)" in log


def test_back_to_back_tasks_keep_protection_without_a_gap(ecs, start_worker):
    worker = start_worker(on_ecs(ecs))

    worker.send("first", 1.5)
    first_end = worker.wait_record("first", "end")
    time.sleep(GRACE / 3)  # idle, but for less than the grace
    worker.send("second", 1.5)
    second_start = worker.wait_record("second", "start")
    second_end = worker.wait_record("second", "end")

    assert second_start["protected"] is True
    assert second_start["at"] - first_end["at"] >= GRACE / 3
    off = wait_unprotected(ecs, worker)
    assert off > second_end["at"], f"protection cleared between the tasks: {ecs.puts}"
    assert [enabled for _, enabled, _ in ecs.puts].count(False) == 1, ecs.puts
    assert ecs.puts[0][1] is True


def test_drain_tag_stops_consuming_clears_protection_when_done_and_resumes(
        ecs, start_worker, redis):
    worker = start_worker(on_ecs(ecs))

    worker.send("running", 5)
    worker.wait_record("running", "start")
    ecs.set_tags({DRAIN_TAG: "true", "other": "x"})
    worker.wait_log("draining", timeout=10)
    time.sleep(1.5)  # the consumer applies the cancel on its own loop
    sent = worker.send("queued", 1)
    assert puts_off(ecs) == [], "protection cleared while a task still runs"

    worker.wait_log("drained", timeout=15)
    running_end = worker.record("running", "end")
    assert running_end, "drained before the running task finished"
    off = puts_off(ecs)
    assert len(off) == 1 and off[0] >= running_end["at"], ecs.puts
    assert not ecs.enabled

    # The queued task stays on the broker: nothing consumes it while draining.
    time.sleep(max(0.0, sent + 6 - time.time()))
    assert worker.record("queued", "start") is None, "a draining worker ran a new task"
    assert redis.client.llen("default") == 1

    ecs.set_tags({"other": "x"})
    worker.wait_log("drain cancelled", timeout=10)
    queued = worker.wait_record("queued", "start", timeout=10)
    assert queued["protected"] is True
    worker.wait_record("queued", "end")
    assert redis.client.llen("default") == 0


def test_tags_are_read_with_list_tags_for_resource_on_the_task_s_own_arn(ecs, start_worker):
    worker = start_worker(on_ecs(ecs))
    # Several polls (every 0.5 s), then the drain tag: seen through the same API.
    wait_for("3 ListTagsForResource calls", lambda: len(ecs.api_calls) >= 3, 15)
    assert "draining" not in worker.log()
    ecs.set_tags({DRAIN_TAG: "true"})
    worker.wait_log("drained", timeout=10)

    calls = list(ecs.api_calls)
    assert {(c["path"], c["operation"], c["resourceArn"]) for c in calls} == {
        ("/", "ListTagsForResource", ecs.task_arn)}, calls
    # Signed for ECS in the ARN's region (not AWS_DEFAULT_REGION) with the task role's key.
    assert {(c["access_key"], c["region"], c["service"]) for c in calls} == {
        (ACCESS_KEY_ID, "eu-west-1", "ecs")}, calls
    # The ARN is read once from /task and kept; taskWithTags (EC2 only) is never asked.
    assert ecs.metadata_requests == [("GET", "/v4/meta-0123/task")], ecs.metadata_requests
    assert SECRET_ACCESS_KEY not in worker.log()


def test_unreadable_tags_keep_the_last_known_drain_state(ecs, start_worker):
    worker = start_worker(on_ecs(ecs))
    ecs.set_tags({DRAIN_TAG: "true"})
    worker.wait_log("drained", timeout=10)

    # The API fails while the tag is gone: the worker cannot know, so it stays drained.
    ecs.fail_api(500)
    ecs.set_tags({})
    failing_from = len(ecs.api_calls)
    worker.wait_log("task tags unreadable", timeout=10)
    wait_for("3 failed polls", lambda: len(ecs.api_calls) - failing_from >= 3, 15)
    assert "drain cancelled" not in worker.log()
    worker.send("held back", 0.2)
    time.sleep(1.5)
    assert worker.record("held back", "start") is None, "consumed while drained"

    # The API answers again: the tag is gone, consumption resumes.
    ecs.fail_api(None)
    worker.wait_log("drain cancelled", timeout=10)
    assert worker.wait_record("held back", "end", timeout=10)
    log = worker.log()
    assert "ServerException" in log and SECRET_ACCESS_KEY not in log


def test_scaler_protection_is_left_alone_unless_draining(ecs, start_worker):
    # The scaler protected this idle worker to keep it through a scale-in: not ours to clear.
    ecs.enabled = True
    worker = start_worker(on_ecs(ecs))
    time.sleep(GRACE + 1.5)
    assert ecs.puts == [] and ecs.enabled, "cleared protection it did not set"

    # Asked to drain, an idle worker clears it whoever set it: it must become stoppable.
    ecs.set_tags({DRAIN_TAG: "true"})
    worker.wait_log("drained", timeout=10)
    assert [enabled for _, enabled, _ in ecs.puts] == [False]
    assert not ecs.enabled


def test_without_ecs_agent_uri_it_only_logs_and_tasks_run(ecs, start_worker):
    env = {**FAST, "ECS_AGENT_URI": None, "ECS_CONTAINER_METADATA_URI_V4": None}
    worker = start_worker(env)
    worker.send("plain", 0.2)
    assert worker.wait_record("plain", "end")
    assert worker.record("plain", "start")["protected"] is None
    assert worker.log().count("ECS_AGENT_URI not set") == 1

    # And the module imports with no Airflow (CELERY_CONFIG is then empty) and no boto3
    # (blocked: importing it raises ImportError).
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys; sys.modules['boto3'] = sys.modules['botocore'] = None\n"
         "import airflow_stack_worker as m; assert m.CELERY_CONFIG == {}, m.CELERY_CONFIG"],
        env={"PYTHONPATH": str(MODULE_DIR), "PYTHONDONTWRITEBYTECODE": "1",
             "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
