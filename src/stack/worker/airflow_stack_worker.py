"""ECS task scale-in protection and drain for an Airflow Celery worker (airflow-stack).

The stack's template writes this file to ``$AIRFLOW_HOME/config/airflow_stack_worker.py``
in every Celery worker container and points ``[celery] celery_config_options`` at
``airflow_stack_worker.CELERY_CONFIG``. Airflow puts ``$AIRFLOW_HOME/config`` on sys.path
and imports that option to build its Celery app, so importing this module in the worker
connects the Celery signal handlers below; ``CELERY_CONFIG`` is Airflow's own default
Celery config, unchanged.

Why it exists
-------------
* ECS stops only *unprotected* tasks when a service scales in: lowering the desired count
  stops some task of ECS's choosing, busy or not, unless the task has set scale-in
  protection through the ECS agent (``PUT $ECS_AGENT_URI/task-protection/v1/state``).
  Only the worker knows for sure whether it holds work, so the worker protects itself.
* The scaler Lambda decides from Airflow's view (queued and running task instances), but a
  Celery message is taken off the broker (and prefetched) before Airflow shows the task
  instance as ``running``. In that window the worker looks idle from outside. So the
  protection is set in ``task_received``, synchronously, in the consumer, before the task
  is handed to the pool: by the time the task body runs, the task is protected.
* The scaler never unprotects a worker. It may protect idle workers it keeps during a
  scale-in, but it cannot know whether such a worker has received a message since:
  unprotecting would race with the protection set here and could expose a busy worker.
  So only this module clears protection: when the worker has held no work for a grace
  period and the protection is this module's (set or renewed by it for work it received;
  a scaler's protection of an idle worker is left alone), or when the worker was asked
  to drain and is done.

What it does (in the worker's main process)
-------------------------------------------
* ``task_received``: PUT protection on (a short timeout; failures are logged, never
  raised into Celery).
* A daemon thread, started on ``worker_ready``, every ~2 s counts the requests held
  (``celery.worker.state`` reserved ∪ active). While any: keep protection on, renewing
  it once half of ``ExpiresInMinutes`` has passed. After ~5 s with none: PUT protection
  off, if this module set it.
* The same thread reads the task's tags every ~10 s with the ECS API's
  ``ListTagsForResource`` on the task's own ARN (read once from task metadata v4,
  ``GET $ECS_CONTAINER_METADATA_URI_V4/task``, field ``TaskARN``; the region is the ARN's),
  signed with the task role's credentials (boto3's default chain: on Fargate, the
  container credentials endpoint). Not the metadata endpoint's ``/taskWithTags``: AWS
  documents it for tasks on EC2 only, and the stack runs on Fargate. Short timeouts, few
  retries; a failed read is logged and the last known drain state kept.
  The drain tag (``AIRFLOW_STACK_DRAIN_TAG`` = ``true``) stops consumption from every
  queue, through Celery's remote control addressed to this worker only (the consumer's
  event loop is not thread-safe), and once nothing is held, clears protection whoever set
  it (a drained worker must be stoppable). When the tag goes away, consumption resumes.

Off ECS (``ECS_AGENT_URI`` unset) it does nothing but log once. The standard library,
Celery, and boto3/botocore from the image (the apache/airflow image has them), imported
only when the tags are first read: off ECS the module imports without boto3.
Log lines go to the ``airflow_stack.worker`` logger: "protected", "unprotected",
"draining", "drained", "drain cancelled".
"""

import json
import logging
import os
import threading
import time
import urllib.request

from celery import signals
from celery.worker import state as worker_state

try:  # Airflow's own Celery config, as `[celery] celery_config_options` would default to.
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    CELERY_CONFIG = DEFAULT_CELERY_CONFIG
except ImportError:  # no Airflow (tests with a plain Celery app)
    CELERY_CONFIG = {}

log = logging.getLogger("airflow_stack.worker")
log.setLevel(logging.INFO)


def _seconds(name, default):
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return float(default)


AGENT_URI = os.environ.get("ECS_AGENT_URI", "").rstrip("/")
METADATA_URI = os.environ.get("ECS_CONTAINER_METADATA_URI_V4", "").rstrip("/")
DRAIN_TAG = os.environ.get("AIRFLOW_STACK_DRAIN_TAG", "airflow-stack:drain")
EXPIRES_MINUTES = max(1, int(_seconds("AIRFLOW_STACK_PROTECTION_MINUTES", 60)))
# The timings below default to the documented ones; tests shorten them.
RENEW_SECONDS = _seconds("AIRFLOW_STACK_PROTECTION_RENEW_SECONDS", EXPIRES_MINUTES * 60 / 2)
TICK_SECONDS = _seconds("AIRFLOW_STACK_WORKER_TICK_SECONDS", 2)
IDLE_GRACE_SECONDS = _seconds("AIRFLOW_STACK_IDLE_GRACE_SECONDS", 5)
# Each tag poll is one ECS API call (ListTagsForResource) per worker, against the
# account's ECS request quota: every 10 s, not more often.
TAG_POLL_SECONDS = _seconds("AIRFLOW_STACK_TAG_POLL_SECONDS", 10)
HTTP_TIMEOUT_SECONDS = 2
# The ECS API client's: a slow API must not hold the monitor thread for long.
API_TIMEOUT_SECONDS = 2
API_MAX_ATTEMPTS = 2
CONTROL_TIMEOUT_SECONDS = 5


def _http(method, url, body=None):
    """One request to the ECS agent or metadata endpoint; returns the JSON body."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_SECONDS) as resp:
        return json.loads(resp.read() or b"{}")


class _TaskTags:
    """Reads this task's tags with the ECS API (ListTagsForResource on its own ARN).

    AWS docs: "Amazon ECS task metadata endpoint version 4 for tasks on Fargate" lists
    only ``${ECS_CONTAINER_METADATA_URI_V4}``, ``/task``, ``/stats`` and ``/task/stats``;
    ``/taskWithTags`` is on "Amazon ECS task metadata endpoint version 4", the page for
    tasks on EC2. The ARN is ``TaskARN`` of ``/task`` ("Amazon ECS task metadata v4 JSON
    response for tasks on Fargate"); the call is ``ListTagsForResource`` (Amazon ECS API
    Reference), allowed to the task role by the stack on ``task/<cluster>/*``. Used by the
    monitor thread only; the ARN and the client are made once and kept."""

    def __init__(self):
        self.task_arn = None
        self.client = None

    def read(self):
        """The task's tags as a map; raises on any failure (the caller logs it)."""
        if self.task_arn is None:
            arn = _http("GET", f"{METADATA_URI}/task").get("TaskARN") or ""
            if not arn.startswith("arn:") or len(arn.split(":")) < 6:
                raise RuntimeError(f"no task ARN in task metadata: {arn!r}")
            self.task_arn = arn
        if self.client is None:
            self.client = self._client(self.task_arn.split(":")[3])
        answer = self.client.list_tags_for_resource(resourceArn=self.task_arn)
        return {t.get("key"): t.get("value", "") for t in answer.get("tags") or []}

    @staticmethod
    def _client(region):
        import boto3  # lazily: off ECS the module imports without boto3
        from botocore.config import Config

        return boto3.session.Session().client("ecs", region_name=region, config=Config(
            connect_timeout=API_TIMEOUT_SECONDS, read_timeout=API_TIMEOUT_SECONDS,
            retries={"mode": "standard", "total_max_attempts": API_MAX_ATTEMPTS}))


class _Protection:
    """This worker's view of its scale-in protection, shared by the consumer and the thread.

    Decisions are taken under the lock, against the state after any PUT under way: a
    message received while the thread is clearing protection is protected right after.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.ours = False  # protection is on and this module set it
        self.set_at = 0.0  # monotonic time of our last successful PUT true
        self.busy_at = 0.0  # monotonic time of the last task_received, or work seen held

    def received(self):
        """task_received: protect now unless already protected by us. The consumer waits
        for a PUT under way, at most one HTTP timeout, so it never runs unprotected."""
        with self.lock:
            self.busy_at = time.monotonic()
            if not self.ours:
                self._put(True, "task received")

    def put(self, enabled, why, min_idle=None):
        """PUT the protection state; True on success. With min_idle, only when the worker
        holds nothing and has held or received nothing for that many seconds."""
        with self.lock:
            if min_idle is not None:
                now = time.monotonic()
                if _held():
                    self.busy_at = now
                    return False
                if now - self.busy_at < min_idle:
                    return False
            return self._put(enabled, why)

    def _put(self, enabled, why):
        body = {"ProtectionEnabled": enabled}
        if enabled:
            body["ExpiresInMinutes"] = EXPIRES_MINUTES
        try:
            answer = _http("PUT", f"{AGENT_URI}/task-protection/v1/state", body)
            failure = answer.get("failure") or answer.get("error")
            if failure:
                raise RuntimeError(failure.get("Reason") or failure.get("Message") or failure)
        except Exception as exc:  # noqa: BLE001 - nothing may escape into Celery
            log.warning("protection %s failed (%s): %s", "on" if enabled else "off", why, exc)
            return False
        self.ours = enabled
        self.set_at = time.monotonic()
        log.info("%s (%s)", "protected" if enabled else "unprotected", why)
        return True


_protection = _Protection()


def _held():
    """Requests this worker holds: received or prefetched, and executing."""
    for _ in range(3):
        try:
            return len(worker_state.reserved_requests | worker_state.active_requests)
        except RuntimeError:  # a set changed size under us; read again
            time.sleep(0.01)
    return 1  # unknown: count as busy, the safe side


class _Monitor(threading.Thread):
    """Renews and clears protection, follows the drain tag (see the module docstring)."""

    def __init__(self, consumer):
        super().__init__(name="airflow-stack-worker", daemon=True)
        self.app = consumer.app
        self.hostname = consumer.hostname
        self.consumer = consumer
        self.next_tag_poll = 0.0
        self.tags = _TaskTags()
        self.drain_tag = False
        self.drain_queues = None  # the queues to stop consuming; None while not draining
        self.cancelled = set()  # those whose cancel_consumer this worker acknowledged
        self.drained = False

    def run(self):
        while True:
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - keep watching whatever happens
                log.exception("worker monitor error")
            time.sleep(TICK_SECONDS)

    def tick(self):
        now = time.monotonic()
        held = _held()
        if held:
            _protection.busy_at = now
            if not _protection.ours:
                _protection.put(True, f"{held} held")
            elif now - _protection.set_at >= RENEW_SECONDS:
                _protection.put(True, "renew")
        elif _protection.ours:
            _protection.put(False, "idle", min_idle=IDLE_GRACE_SECONDS)

        if METADATA_URI and now >= self.next_tag_poll:
            self.next_tag_poll = now + TAG_POLL_SECONDS
            self.read_drain_tag()
        if self.drain_tag:
            self.drain()
        elif self.drain_queues is not None:
            self.resume()

    def read_drain_tag(self):
        try:
            tags = self.tags.read()
        except Exception as exc:  # noqa: BLE001 - keep the last known state
            log.warning("task tags unreadable: %s", exc)
            return
        self.drain_tag = str(tags.get(DRAIN_TAG, "")).lower() == "true"

    def control(self, command, queue):
        """Ask this worker's own consumer, over the broker, to add or cancel a queue."""
        with self.app.connection_for_write() as conn:
            replies = getattr(self.app.control, command)(
                queue, destination=[self.hostname], reply=True,
                timeout=CONTROL_TIMEOUT_SECONDS, connection=conn)
        return any("ok" in r.get(self.hostname, {}) for r in replies or [])

    def drain(self):
        if self.drain_queues is None:
            task_consumer = self.consumer.task_consumer
            queues = [q.name for q in task_consumer.queues] if task_consumer else []
            if not queues:  # the consumer is (re)connecting: try again next tick
                return
            self.drain_queues = queues
            self.cancelled = set()
            self.drained = False
            log.info("draining: stop consuming from %s", ", ".join(queues))
        for queue in self.drain_queues:
            if queue not in self.cancelled and self.control("cancel_consumer", queue):
                self.cancelled.add(queue)
        if self.drained or len(self.cancelled) < len(self.drain_queues):
            return
        # Whoever set the protection: a drained worker must be stoppable.
        if _protection.put(False, "drain", min_idle=0):
            self.drained = True
            log.info("drained")

    def resume(self):
        for queue in self.drain_queues:  # add_consumer is a no-op for a queue consumed
            if not self.control("add_consumer", queue):
                log.warning("drain cancelled: %s not added back yet, retrying", queue)
                return
        log.info("drain cancelled: consuming from %s again", ", ".join(self.drain_queues))
        self.drain_queues = None


if AGENT_URI:

    @signals.task_received.connect(weak=False)
    def _on_task_received(sender=None, request=None, **_):
        _protection.received()

    _monitor = []

    @signals.worker_ready.connect(weak=False)
    def _on_worker_ready(sender=None, **_):
        if _monitor:  # worker_ready fires once per worker; be sure of it
            return
        _monitor.append(_Monitor(sender))
        _monitor[0].start()
        log.info("scale-in protection on (expires in %s min)%s", EXPIRES_MINUTES,
                 "" if METADATA_URI else "; no task metadata: drain off")

else:

    @signals.worker_ready.connect(weak=False)
    def _on_worker_ready(sender=None, **_):
        log.info("ECS_AGENT_URI not set: scale-in protection and drain off")
