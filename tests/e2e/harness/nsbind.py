"""Listening sockets inside a lab host's network namespace, for servers that live in the
test process (the Lambda Runtime API, the custom-resource ResponseURL, the SNS and
CloudWatch stand-ins).

The code is the AWS emulator's (tests/aws_emulator/netns_bind.py: the emulator serves a
VPC function's Runtime API inside that function's lab host the same way, and must not
import from tests/e2e). It is loaded here by its path, not through sys.path: the emulator's
directory also holds a `harness.py`, which must not shadow this `harness` package.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "aws_emulator_netns_bind"
_PATH = Path(__file__).resolve().parents[2] / "aws_emulator" / "netns_bind.py"

if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _module
    _spec.loader.exec_module(_module)

listen_in = sys.modules[_NAME].listen_in  # (netns, address="127.0.0.1", port=0) -> socket
serve_on = sys.modules[_NAME].serve_on  # (server_class, sock, handler) -> server

__all__ = ["listen_in", "serve_on"]
