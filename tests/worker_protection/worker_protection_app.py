"""The Celery app the worker-protection tests run as a real worker (`celery -A
worker_protection_app worker`): the config is airflow_stack_worker.CELERY_CONFIG (empty
without Airflow) with the test's Redis broker and the settings Airflow's default config
uses (prefetch multiplier 1, acks late, queue "default"). Importing airflow_stack_worker
connects its signal handlers, as `[celery] celery_config_options` does in Airflow."""

import json
import os
import time
import urllib.request

from celery import Celery

import airflow_stack_worker

app = Celery("worker_protection")
app.config_from_object({
    **airflow_stack_worker.CELERY_CONFIG,
    "broker_url": os.environ["WORKER_PROTECTION_BROKER_URL"],
    "worker_prefetch_multiplier": 1,
    "task_acks_late": True,
    "task_default_queue": "default",
    "task_default_exchange": "default",
    "accept_content": ["json"],
    "broker_connection_retry_on_startup": True,
})


def _record(**fields):
    with open(os.environ["WORKER_PROTECTION_RECORD"], "a") as out:
        out.write(json.dumps(fields) + "\n")


@app.task(name="hold")
def hold(label, seconds):
    """Record whether the (fake) ECS agent has protection on as the body starts, then hold
    the worker for `seconds`."""
    protected = None
    agent = os.environ.get("ECS_AGENT_URI")
    if agent:
        with urllib.request.urlopen(f"{agent}/task-protection/v1/state", timeout=5) as resp:
            protected = json.load(resp)["protection"]["ProtectionEnabled"]
    _record(label=label, event="start", at=time.time(), protected=protected)
    time.sleep(seconds)
    _record(label=label, event="end", at=time.time())
