"""Fixtures of the network-lab self-tests: the module under test lives in the e2e harness
(tests/e2e/harness/netlab.py); every lab a test makes is closed by the fixture, also when
the test fails."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parents[1] / "e2e"
sys.path.insert(0, str(E2E))

from harness import netlab  # noqa: E402


def pytest_configure(config):
    # No silent skips: without root or the OS tools nothing here can run, so say so.
    problems = []
    if os.geteuid() != 0:
        problems.append("the network lab needs root")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("nsenter", "util-linux"),
                          ("setpriv", "util-linux")):
        if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"):
            problems.append(f"`{tool}` missing (apt-get install {package}; tests/run-all.sh does)")
    if problems:
        raise pytest.UsageError("tests/netlab: " + "; ".join(problems))


@pytest.fixture
def lab():
    lab = netlab.Lab("nt")
    try:
        yield lab
    finally:
        lab.close()
