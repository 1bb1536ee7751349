"""The image built in the account (issue 15, point 1), on the `secrets` shape (dev.yaml
with the Secrets Manager backend and `airflow.build` of tests/fixtures/image:
requirements.txt and a plugins folder).

CodeBuild and Docker cannot run here; the harness applies the build's own install script
(from `airflow-stack image-context`, the bytes deploy uploads) to the local Airflow and
puts the plugins folder where the image puts it (harness/image_build.py). A DAG that
imports the requirement and uses the plugin then runs to success on a worker.

Run (as root, once tests/run-all.sh has installed everything):
    $AIRFLOW_STACK_VENV/bin/pytest -s -p no:cacheprovider tests/e2e -k image_build
"""

from __future__ import annotations

import time

import pytest

built_only = pytest.mark.parametrize("stack", ["secrets"], indirect=True)


@built_only
def test_every_airflow_container_runs_the_built_image(stack):
    assert stack.image is not None, "the shape has no airflow.build"
    uri = stack.ctx.resolve({"Fn::GetAtt": [stack.built_image, "ImageUri"]})
    assert uri.endswith(":" + stack.template.resources[stack.built_image]["Properties"]["ImageTag"])
    for name in ("api-server", "scheduler", "dag-processor", "triggerer", "worker"):
        c = stack.containers_named(name)[0]
        assert c.definition["Image"] == {"Fn::GetAtt": [stack.built_image, "ImageUri"]}, name
        assert (c.home / "plugins" / "stack_example_plugin.py").exists(), name
    # The install ran the build's script and installed the example's requirement.
    assert "humanize" in stack.image.install_output, stack.image.install_output[-2000:]


@built_only
def test_a_dag_imports_the_requirement_and_uses_the_plugin(stack, airflow):
    airflow.wait_dags(["e2e_image_build"], timeout=180)
    run_id = airflow.trigger("e2e_image_build")
    started = time.monotonic()
    state = None
    while time.monotonic() - started < 180:
        state = airflow.run_state("e2e_image_build", run_id)
        if state in ("success", "failed"):
            break
        time.sleep(1)
    took = time.monotonic() - started
    if state != "success":
        log = airflow.task_log("e2e_image_build", run_id, "use_requirement_and_plugin", 1)
        raise AssertionError(f"e2e_image_build ended {state} after {took:.0f}s:\n{log[-3000:]}")
    got = airflow.xcom("e2e_image_build", run_id, "use_requirement_and_plugin")
    assert got["size"] == "1.5 MB", got
    # From the Airflow environment the install script wrote to.
    assert got["humanize_file"].startswith(str(stack.airflow_venv)), got
    print(f"[e2e] image build: DAG with the requirement and the plugin done in {took:.1f}s",
          flush=True)
    stack.fail_on_violations("after the DAG using the built image")
