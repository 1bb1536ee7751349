"""The image built in the account (`airflow.build`, issue 15 point 1), played locally.

CodeBuild and Docker cannot run here (no Docker engine, no network to Docker Hub or
GitHub), so the build's own steps are applied to the local Airflow environment instead,
from the build context `airflow-stack image-context` writes - the same bytes deploy
uploads for CodeBuild:

* `install-requirements.sh requirements.txt`, the script the Dockerfile runs, with the
  Airflow venv's `python` and `pip` first on PATH. Its constraints URL (GitHub) is out of
  reach here, so AIRFLOW_STACK_CONSTRAINTS points it at the venv's own `pip freeze`: the
  same guarantee (nothing already installed moves), for this environment.
* `plugins/` into each Airflow container's `$AIRFLOW_HOME/plugins`, where the Dockerfile
  puts it in the image (`/opt/airflow/plugins`, `AIRFLOW_HOME=/opt/airflow`).

The example's requirement (and the tracked Lambda provider, when the context has it) is
uninstalled first, so every run proves the install.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from .procs import run

FIXTURE = "tests/fixtures/image"
# Where the context carries the tracked Lambda provider when `airflow.lambda_functions`
# lists functions; the install script installs it.
PROVIDER = "providers/airflow-stack-lambda"


def with_image_build(stack_file: Path, repo: Path) -> Path:
    """`stack_file` with the example's `airflow.build` (absolute paths to the fixture's
    requirements and plugins), rewritten in place."""
    fixture = repo / FIXTURE
    text = stack_file.read_text()
    assert "\n  build:" not in text, f"{stack_file} already sets airflow.build"
    block = ("  build:   # e2e: the image-build example (tests/fixtures/image)\n"
             f"    requirements: {fixture / 'requirements.txt'}\n"
             f"    plugins: {fixture / 'plugins'}\n")
    text, n = re.subn(r"^airflow:\n", "airflow:\n" + block, text, count=1, flags=re.M)
    assert n == 1, f"{stack_file} has no airflow block"
    stack_file.write_text(text)
    return stack_file


def requirement_names(requirements: Path) -> list[str]:
    """The distribution names of a simple requirements file (name, then a specifier)."""
    names = []
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0])
    return names


class LocalImage:
    """The build context and what applying it did."""

    def __init__(self, cli: Path, repo: Path, stack_file: str, workdir: Path, venv: Path):
        self.context = workdir / "image-context"
        run([str(cli), "image-context", "--out", str(self.context), stack_file], cwd=str(repo))
        self.venv = venv
        self.tag = None
        self.install_output = ""

    def apply(self) -> None:
        """Uninstalls the example's requirements, then runs the build's install script."""
        pip = str(self.venv / "bin" / "pip")
        requirements = self.context / "requirements.txt"
        names = requirement_names(requirements)
        if (self.context / PROVIDER).is_dir():
            names.append("airflow-stack-lambda")  # installed by the same script (issue 16)
        run([pip, "uninstall", "-y", "-q", *names], timeout=300)
        frozen = run([pip, "freeze", "--exclude-editable"]).stdout
        constraints = self.context.parent / "constraints-frozen.txt"
        # Direct references (`name @ file://...`) are not constraints pip accepts.
        constraints.write_text("".join(line + "\n" for line in frozen.splitlines()
                                       if " @ " not in line and not line.startswith("-")))
        env = {"PATH": f"{self.venv}/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
               "PIP_DISABLE_PIP_VERSION_CHECK": "1",
               "AIRFLOW_STACK_CONSTRAINTS": str(constraints)}
        done = run(["bash", str(self.context / "install-requirements.sh"), str(requirements)],
                   env=env, timeout=900)
        self.install_output = done.stdout + done.stderr
        run(["chmod", "-R", "a+rX", str(self.venv)])

    def install_plugins(self, airflow_home: Path, owner: tuple[int, int] | None) -> None:
        """The image's plugins folder, in one container's AIRFLOW_HOME."""
        source = self.context / "plugins"
        if not source.is_dir():
            return
        target = airflow_home / "plugins"
        shutil.copytree(source, target, dirs_exist_ok=True)
        if owner:
            for path in [target, *target.rglob("*")]:
                shutil.chown(path, *owner)
