"""Correlation IDs: one per task try, carried in the payload and on every log line.

The ID is made for two readers. CloudWatch Logs filters on it (``FilterLogEvents`` with the
ID as a quoted term), so it holds only characters that need no escaping inside a quoted
filter term. People read it in the CloudWatch console and in the task log, so it starts
with the task's identity instead of being an opaque UUID. The random tail makes it unique
even when a truncated identity is not.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

PAYLOAD_KEY = "airflow_correlation_id"
"""The key of the payload object the operator adds the correlation ID under. Reserved:
a payload that already has it gets it replaced."""

MAX_LENGTH = 160
"""Upper bound of a correlation ID's length, whatever the task's identity."""

_PART_LIMIT = 40
_RANDOM_HEX_CHARS = 12
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def _part(text: str) -> str:
    """One identity segment: unsafe runs become '-', then cut to a bounded length."""
    return _UNSAFE.sub("-", text)[:_PART_LIMIT] or "-"


def make_correlation_id(
    dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int
) -> str:
    """A fresh ID for one try: ``<dag>.<task>.<run>.m<map index>.t<try>.<12 random hex>``.

    ``map_index`` is -1 for an unmapped task, as Airflow has it. Each of the dag id, task id
    and run id is cut to 40 characters after unsafe characters (anything but letters,
    digits, ``_`` and ``-``) became ``-``: the ID stays under :data:`MAX_LENGTH`.
    """
    random_tail = secrets.token_hex(_RANDOM_HEX_CHARS // 2)
    parts = [
        _part(dag_id),
        _part(task_id),
        _part(run_id),
        f"m{int(map_index)}",
        f"t{int(try_number)}",
        random_tail,
    ]
    correlation_id = ".".join(parts)
    # Holds by construction (3 x 40 + the short fields); checked so a change cannot break it.
    assert len(correlation_id) <= MAX_LENGTH, correlation_id
    return correlation_id


def payload_with_correlation_id(payload: Any, correlation_id: str) -> dict[str, Any]:
    """The payload as a JSON object with the correlation ID added under :data:`PAYLOAD_KEY`.

    Accepts a mapping, JSON text (``str`` or ``bytes``) of an object, or ``None`` (an empty
    object). Anything else cannot carry the ID and is refused with a ``TypeError``.
    """
    if payload is None:
        obj: Any = {}
    elif isinstance(payload, (str, bytes, bytearray)):
        obj = json.loads(payload) if payload else {}
    else:
        obj = payload
    if not isinstance(obj, dict):
        raise TypeError(
            f"the payload must be a JSON object to carry the correlation ID under "
            f"{PAYLOAD_KEY!r}, got {type(obj).__name__}"
        )
    return {**obj, PAYLOAD_KEY: correlation_id}
