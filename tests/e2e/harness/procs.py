"""Processes the harness starts: each in its own session (process group), logged to a
file, stopped by process id (the group and every descendant) even when a test fails.

Every process started here is registered; `stop_all()` runs from the pytest fixture
finalizers and, as a last resort, from atexit.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

_LOCK = threading.Lock()
_RUNNING: list["Proc"] = []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> dict[int, list[int]]:
    """ppid -> [pid] for every process on the machine (from /proc)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    tree = _children()
    out, todo = [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Proc:
    """One started process (and its group)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path,
                 cwd: str | None = None, stdin: str | None = None):
        self.name = name
        self.argv = argv
        self.log = log
        self._logf = open(log, "ab")
        self.popen = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self._logf, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            start_new_session=True,
        )
        if stdin is not None:
            self.popen.stdin.write(stdin.encode())
            self.popen.stdin.close()
        self.pid = self.popen.pid
        with _LOCK:
            _RUNNING.append(self)

    def running(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the group and every descendant, then SIGKILL what is left."""
        pids = [self.pid] + descendants(self.pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            for pid in pids:  # descendants that left the group (setsid) get it too
                try:
                    if os.getpgid(pid) != self.pid:
                        os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5)
            while time.monotonic() < deadline:
                self.popen.poll()
                if not any(_alive(p) for p in pids):
                    break
                time.sleep(0.2)
            else:
                continue
            break
        self.popen.poll()
        self._logf.close()
        with _LOCK:
            if self in _RUNNING:
                _RUNNING.remove(self)


def stop_all() -> None:
    with _LOCK:
        procs = list(reversed(_RUNNING))
    for proc in procs:
        proc.stop()


atexit.register(stop_all)


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.5,
              on_timeout: Callable[[], str] | None = None) -> float:
    """Poll `check` until it returns true; return the seconds it took or raise."""
    started = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last = e
        time.sleep(interval)
    detail = on_timeout() if on_timeout else ""
    raise TimeoutError(f"{what}: not ready after {timeout:.0f}s (last error: {last!r})\n{detail}")


def run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 120,
        check: bool = True, **kw) -> subprocess.CompletedProcess:
    """A short command; its output is returned (and shown when it fails)."""
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {res.returncode}\nstdout:\n{res.stdout[-4000:]}\n"
                           f"stderr:\n{res.stderr[-4000:]}")
    return res
