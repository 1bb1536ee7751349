"""The `secrets` shape: stacks/dev.yaml with `airflow.secrets_backend` on for the
workers alone (issue 15, point 3), so that the packed core task's role is the component
without the permission."""

from __future__ import annotations

import re
from pathlib import Path

BACKEND = "  secrets_backend: { components: [worker] }   # e2e: the workers alone\n"


def secrets_backend_stack_file(repo: Path, workdir: Path, base: str = "stacks/dev.yaml") -> Path:
    """dev.yaml with the Secrets Manager backend on for the workers, with the default
    prefixes (`airflow/connections`, `airflow/variables`)."""
    text = (repo / base).read_text()
    assert "secrets_backend" not in text, f"{base} already sets airflow.secrets_backend"
    text, n = re.subn(r"^airflow:\n", "airflow:\n" + BACKEND, text, count=1, flags=re.M)
    assert n == 1, f"{base} has no airflow block to add the backend to"
    path = workdir / "secrets.yaml"
    path.write_text(text)
    return path
