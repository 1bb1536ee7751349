"""With a real Airflow 3: the worker container's own command writes the module from
AIRFLOW_STACK_WORKER_MODULE into $AIRFLOW_HOME/config, and Airflow's Celery app then
imports it through `[celery] celery_config_options`: the config is Airflow's default
Celery config (the same object) and the module's signal handlers are connected.

Collected only when AIRFLOW_STACK_AIRFLOW_PYTHON names an Airflow venv's python
(conftest.py), e.g. /var/cache/airflow-stack/airflow-3.3.2/bin/python."""

from __future__ import annotations

import os
import subprocess

from conftest import MODULE_DIR

CHECK = """
from celery import signals
from airflow.providers.celery.executors import celery_executor_utils as utils
from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
import airflow_stack_worker

assert airflow_stack_worker.__file__.startswith(os.environ["AIRFLOW_HOME"] + "/config/")
assert utils.get_celery_configuration() is DEFAULT_CELERY_CONFIG
assert airflow_stack_worker.CELERY_CONFIG is DEFAULT_CELERY_CONFIG
assert utils.app.conf.task_acks_late is True
handlers = [r[1] for r in signals.task_received.receivers]
assert any(getattr(h, "__module__", "") == "airflow_stack_worker" for h in handlers), handlers
print("ok", utils.app.conf.worker_prefetch_multiplier)
"""


def test_airflow_imports_the_module_as_its_celery_config(tmp_path):
    python = os.environ["AIRFLOW_STACK_AIRFLOW_PYTHON"]
    # The worker container's command (the template's), with `python -c` for `airflow celery
    # worker`; no PYTHONPATH: Airflow itself puts $AIRFLOW_HOME/config on sys.path.
    command = ('mkdir -p "$AIRFLOW_HOME/config" && printf "%s" "$AIRFLOW_STACK_WORKER_MODULE" '
               '> "$AIRFLOW_HOME/config/airflow_stack_worker.py" && exec "$0" -c "$1"')
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "airflow_stack_worker.CELERY_CONFIG",
        "AIRFLOW_STACK_WORKER_MODULE": (MODULE_DIR / "airflow_stack_worker.py").read_text(),
        "AIRFLOW_STACK_DRAIN_TAG": "airflow-stack:drain",
        "AIRFLOW_STACK_PROTECTION_MINUTES": "60",
        "ECS_AGENT_URI": "http://127.0.0.1:9/api/unused",
    }
    out = subprocess.run(["bash", "-c", command, python, "import os\n" + CHECK],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok 1" in out.stdout
    written = tmp_path / "airflow" / "config" / "airflow_stack_worker.py"
    assert written.read_text() == env["AIRFLOW_STACK_WORKER_MODULE"]
