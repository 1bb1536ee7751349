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
from harness.stack import LocalStack, scaled_stack_file  # noqa: E402
from harness.secrets_backend import secrets_backend_stack_file  # noqa: E402
from harness.image_build import with_image_build  # noqa: E402
from harness.tracked_lambda import with_tracked_lambdas  # noqa: E402
from harness.streams import with_streams  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("AIRFLOW_STACK_CACHE", Path.home() / ".cache" / "airflow-stack"))
SHAPES = {"dev": "stacks/dev.yaml", "prod": "stacks/prod.yaml",
          "scaled": "scaled.yaml",  # dev.yaml with the scaler on (stack.scaled_stack_file)
          # and the `orders` stream (harness/streams.py)
          "secrets": "secrets.yaml"}  # dev.yaml with the Secrets Manager backend, airflow.build
# and airflow.lambda_functions
DEFAULT_SHAPES = ["dev", "prod"]  # a test that wants "scaled" or "secrets" asks by name
# tests/run-all.sh runs the shapes in two lanes at once, one pytest process each
# (AIRFLOW_STACK_E2E_LANE=1 or 2): the e2e is mostly waiting (heartbeats, ticks, health
# checks), so two shapes share the two cores of CI with little loss, and the full run
# stays well under 45 minutes. Each lane's lab has a CIDR of its own. Balanced by the
# shapes' measured times (dev 558 s + scaled 468 s; prod 411 s + secrets 493 s).
LANES = {"1": (["dev", "scaled"], "10.77.0.0/16"),
         "2": (["prod", "secrets"], "10.78.0.0/16")}
assert sorted(sum((shapes for shapes, _ in LANES.values()), [])) == sorted(SHAPES), \
    "every shape in exactly one lane"


def _lane() -> tuple[list[str], str] | None:
    """The lane's shapes and lab CIDR, or None: every shape, one after the other."""
    lane = os.environ.get("AIRFLOW_STACK_E2E_LANE")
    if not lane:
        return None
    if lane not in LANES:
        raise pytest.UsageError(f"AIRFLOW_STACK_E2E_LANE={lane!r}: want one of {sorted(LANES)}")
    return LANES[lane]


def pytest_collection_modifyitems(config, items):
    """In a lane, the tests of the other lane's shapes are deselected (pytest reports
    how many); the two lanes together run every test."""
    lane = _lane()
    if lane is None:
        return
    shapes, _ = lane
    keep, drop = [], []
    for item in items:
        shape = item.callspec.params.get("stack") if hasattr(item, "callspec") else None
        (keep if shape is None or shape in shapes else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _dir(var: str, default: Path) -> Path:
    return Path(os.environ.get(var) or default)


def pytest_generate_tests(metafunc):
    """`stack` is dev and prod unless a test names its shapes (scaled and secrets only
    by name)."""
    if "stack" not in metafunc.fixturenames:
        return
    named = any("stack" in str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize"))
    if not named:
        metafunc.parametrize("stack", DEFAULT_SHAPES, indirect=True, scope="session")


@pytest.fixture(scope="session")
def stack(request):
    shape = request.param
    workdir = Path(tempfile.mkdtemp(prefix=f"airflow-stack-e2e-{shape}-"))
    print(f"\n[e2e] {shape}: work dir (process logs): {workdir}", flush=True)
    stack_file = SHAPES[shape]
    if shape == "scaled":
        # Issue 17's stream rides on it: it needs the NAT gateway and the SNS alerts.
        stack_file = str(with_streams(scaled_stack_file(REPO, workdir)))
    if shape == "secrets":
        # Issue 15's shape: the Secrets Manager backend and the image built in the
        # account (harness/image_build.py), on dev.yaml.
        # Issue 16 rides on it: the example tracked functions under airflow.lambda_functions
        # (harness/tracked_lambda.py), so the image build installs the provider.
        stack_file = str(with_tracked_lambdas(with_image_build(
            secrets_backend_stack_file(REPO, workdir), REPO)))
    lane = _lane()
    s = LocalStack(repo=REPO, target_dir=_dir("CARGO_TARGET_DIR", CACHE / "target"),
                   tools_venv=_dir("AIRFLOW_STACK_VENV", CACHE / "venv"), cache=CACHE,
                   workdir=workdir, stack_file=stack_file,
                   **({"lab_cidr": lane[1]} if lane else {}))
    s.shape = shape
    failed_before = request.session.testsfailed
    broken = False
    strict_error = None
    try:
        s.up()
        yield s
        # Whatever ran after the last test of the shape (the scaler's tests) is held to
        # the same bar: nothing AWS would have refused.
        leftover = s.new_violations()
        if leftover:
            strict_error = AssertionError(f"{shape}: AWS would have refused:\n  " +
                                          "\n  ".join(leftover))
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
        if os.environ.get("AIRFLOW_STACK_E2E_KEEP") or broken or strict_error:
            print(f"[e2e] kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if strict_error:
        raise strict_error


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "mutation: puts a defect back into running containers; they stay "
                   "mutated until the next test that is not a mutation test")


@pytest.fixture(autouse=True)
def _pristine(request, stack):
    """Containers a mutation test changed are restored before any other test."""
    if request.node.get_closest_marker("mutation") is None and stack.mutated:
        stack.restore_mutated()
        if "airflow" in request.fixturenames:
            request.getfixturevalue("airflow").login()
    yield


@pytest.fixture(scope="session")
def airflow(stack) -> Airflow:
    _, migrate = stack.template.container("migrate")
    admin_secret = next(s["ValueFrom"]["Ref"] for s in migrate["Secrets"]
                        if s["Name"] == "AIRFLOW_STACK_ADMIN_PASSWORD")
    client = Airflow(stack.api_url, "admin", stack.secret(admin_secret))
    client.login()
    return client
