"""Fixtures of the end-to-end test: each stack shape (stacks/dev.yaml, stacks/prod.yaml)
brought up once, as local processes held to what AWS enforces, and a REST client logged
in as the stack's admin user.

`stack` is parametrized by shape: pytest runs every test that uses it for dev, tears dev
down, then runs them for prod. A test that belongs to one shape says so with
`@pytest.mark.parametrize("stack", ["dev"], indirect=True)`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness.api import Airflow  # noqa: E402
from harness.procs import stop_all  # noqa: E402
from harness.stack import LocalStack  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("AIRFLOW_STACK_CACHE", Path.home() / ".cache" / "airflow-stack"))
SHAPES = {"dev": "stacks/dev.yaml", "prod": "stacks/prod.yaml"}


def _dir(var: str, default: Path) -> Path:
    return Path(os.environ.get(var) or default)


@pytest.fixture(scope="session", params=list(SHAPES))
def stack(request):
    shape = request.param
    workdir = Path(tempfile.mkdtemp(prefix=f"airflow-stack-e2e-{shape}-"))
    print(f"\n[e2e] {shape}: work dir (process logs): {workdir}", flush=True)
    s = LocalStack(repo=REPO, target_dir=_dir("CARGO_TARGET_DIR", CACHE / "target"),
                   tools_venv=_dir("AIRFLOW_STACK_VENV", CACHE / "venv"), cache=CACHE,
                   workdir=workdir, stack_file=SHAPES[shape])
    s.shape = shape
    failed_before = request.session.testsfailed
    broken = False
    try:
        s.up()
        yield s
    except BaseException:
        broken = True
        print(s.dump_logs(), flush=True)
        raise
    finally:
        if request.session.testsfailed > failed_before:
            broken = True
            print(s.dump_logs(), flush=True)
        s.down()
        stop_all()
        print(f"[e2e] {shape}: phase timings:\n" + s.timings.report(), flush=True)
        if os.environ.get("AIRFLOW_STACK_E2E_KEEP") or broken:
            print(f"[e2e] kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow(stack) -> Airflow:
    _, migrate = stack.template.container("migrate")
    admin_secret = next(s["ValueFrom"]["Ref"] for s in migrate["Secrets"]
                        if s["Name"] == "AIRFLOW_STACK_ADMIN_PASSWORD")
    client = Airflow(stack.api_url, "admin", stack.secret(admin_secret))
    client.login()
    return client
