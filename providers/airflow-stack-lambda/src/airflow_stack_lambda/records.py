"""The log record format shared by the operator and the functions (README, "Record format").

A tracked function writes one JSON object per log line. Every object carries
``correlation_id``; the three kinds of marker also carry ``airflow_tracking``:

- ``"start"``: the function received the event;
- ``"end"``: the function returned; ``result`` holds its return value when there is one;
- ``"error"``: the function failed; ``errorMessage``, ``errorType`` and ``stackTrace`` (a
  list of strings) describe the error, with the names Lambda itself uses for errors.

Lines without ``airflow_tracking`` are ordinary lines, copied to the task log only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

CORRELATION_FIELD = "correlation_id"
"""The field every record carries (Powertools' ``set_correlation_id`` uses the same name)."""

MARKER_FIELD = "airflow_tracking"
"""The field naming a marker: ``start``, ``end`` or ``error``."""


class Kind(str, Enum):
    """What a log line means to the follower."""

    ORDINARY = "ordinary"
    START = "start"
    END = "end"
    ERROR = "error"


@dataclass(frozen=True)
class FunctionError:
    """A function's error, from an error record or from Lambda's own error payload."""

    error_message: str
    error_type: str | None = None
    stack_trace: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> FunctionError:
        """From an object with Lambda's error keys (``errorMessage``, ``errorType``,
        ``stackTrace``); a stack given as one string is split into lines."""
        stack = obj.get("stackTrace") or ()
        if isinstance(stack, str):
            stack = stack.splitlines()
        return cls(
            error_message=str(obj.get("errorMessage", "")),
            error_type=str(obj["errorType"]) if obj.get("errorType") is not None else None,
            stack_trace=tuple(str(frame) for frame in stack),
        )

    def to_json(self) -> dict[str, Any]:
        """Lambda's error keys, for a trigger event."""
        return {
            "errorMessage": self.error_message,
            "errorType": self.error_type,
            "stackTrace": list(self.stack_trace),
        }


@dataclass(frozen=True)
class Record:
    """One log line of the invocation being followed."""

    kind: Kind
    text: str
    """The line as the function wrote it, for the task log."""
    fields: dict[str, Any]
    """The parsed JSON object; empty for a line that is not JSON."""

    @property
    def has_result(self) -> bool:
        """Whether an end marker carries the function's return value."""
        return self.kind is Kind.END and "result" in self.fields

    @property
    def error(self) -> FunctionError:
        """The error an error record describes."""
        return FunctionError.from_json(self.fields)


def parse_record(message: str, correlation_id: str) -> Record | None:
    """The record a CloudWatch log event's message is, or ``None`` when the line belongs to
    another invocation.

    ``FilterLogEvents`` matches the ID as a term anywhere in the line, so a JSON line is
    kept only when its ``correlation_id`` is exactly ours. A line that is not a JSON object
    but contains the ID (a plain ``print``) is an ordinary line.
    """
    text = message.rstrip("\r\n")
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        return Record(Kind.ORDINARY, text, {}) if correlation_id in text else None
    if obj.get(CORRELATION_FIELD) != correlation_id:
        return None
    marker = obj.get(MARKER_FIELD)
    kind = Kind(marker) if marker in ("start", "end", "error") else Kind.ORDINARY
    return Record(kind, text, obj)
