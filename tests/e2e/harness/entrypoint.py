#!/usr/bin/env python3
"""What the official Airflow image does before a container's command, for local processes.

Run as the container's first process (inside its task's network namespace, as the
image's user):

    python entrypoint.py <the task definition's Command...>

Each step below is what `scripts/docker/entrypoint_prod.sh` in apache/airflow (the
image's ENTRYPOINT, run through dumb-init) does, in the same order, with the container's
own environment; the function named in brackets is the script's. Written in Python
rather than copied, so the harness can say which step failed and why:

1. [check_uid_gid] The image must run with group id 0 (any user id); other groups exit 1.
2. umask 0002, so what the user creates is group-writable.
3. [create_system_user_if_missing] not needed: the harness's user exists in /etc/passwd.
4. [wait_for_airflow_db] Unless CONNECTION_CHECK_MAX_COUNT is 0: `airflow db check`,
   up to CONNECTION_CHECK_MAX_COUNT tries (default 20), CONNECTION_CHECK_SLEEP_TIME
   seconds apart (default 3), before ANY command - also `bash`/`python` ones, and also
   when the container has no database URL (then it checks Airflow's default SQLite file).
   After the last failed try: "ERROR! Maximum number of retries (N) reached." and exit 1.
5. `_AIRFLOW_DB_MIGRATE`/`_AIRFLOW_DB_UPGRADE` (runs `db migrate || true`, swallowing
   failures), `_AIRFLOW_WWW_USER_CREATE` (`users create … || true`) and
   `_PIP_ADDITIONAL_REQUIREMENTS` (pip install at every start): the stack must never set
   them (airflow3.md §8), so here they are an error instead of being carried out.
6. [exec_to_bash_or_python_command_if_specified] A command starting with `bash` or
   `python` is exec'd as it is (after the database check).
7. A leading `airflow` word is dropped; then for `scheduler` and `celery …` commands
   [wait_for_celery_broker]: if `airflow config get-value core executor` is
   CeleryExecutor, the broker URL (`airflow config get-value celery broker_url`) is parsed
   and its host and port must accept a TCP connection (the script uses `nc -zvvn` on the
   address `gethostbyname` gives), with the same tries and pauses.
8. `exec airflow <command>`.

Left out: the LD_PRELOAD of libstdc++ (a workaround for one glibc/arm64 TLS problem) and
`unset PIP_USER` (the harness's virtualenv has no user site).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

FORBIDDEN = ("_AIRFLOW_DB_MIGRATE", "_AIRFLOW_DB_UPGRADE", "_AIRFLOW_WWW_USER_CREATE",
             "_PIP_ADDITIONAL_REQUIREMENTS")
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "mssql": 1433, "redis": 6379, "amqp": 5672}
# How long one TCP try may wait: `nc` without -w waits for the kernel's connect timeout.
# Shorter here so a dropped connection shows up in the harness's firewall record (which
# fails the run) instead of stalling; the harness, not this timeout, decides the verdict.
CONNECT_TIMEOUT_S = 10


def say(message: str) -> None:
    print(f"[entrypoint] {message}", file=sys.stderr, flush=True)


def check_gid() -> None:
    if os.getgid() != 0:
        say(f"ERROR! You should run the image with GID=0 (uid {os.getuid()}, gid {os.getgid()})")
        sys.exit(1)


def with_retries(what: str, check, tries: int, pause: float) -> None:
    """Runs `check` until it returns None; it returns the failure text otherwise."""
    last = ""
    for attempt in range(1, tries + 1):
        last = check()
        if last is None:
            say(f"{what}: ok after {attempt} tr{'y' if attempt == 1 else 'ies'}")
            return
        if attempt < tries:
            time.sleep(pause)
    say(f"ERROR! Maximum number of retries ({tries}) reached.")
    say(f"Last check result: {what}\n{last}")
    sys.exit(1)


def airflow_db_check() -> str | None:
    res = subprocess.run(["airflow", "db", "check"], capture_output=True, text=True)
    return None if res.returncode == 0 else (res.stdout + res.stderr)[-3000:]


def airflow_config(section: str, key: str) -> str:
    res = subprocess.run(["airflow", "config", "get-value", section, key],
                         capture_output=True, text=True)
    if res.returncode != 0:
        say(f"airflow config get-value {section} {key} failed:\n{res.stderr[-2000:]}")
        sys.exit(1)
    return res.stdout.strip()


def tcp_check(host: str, port: int):
    def check() -> str | None:
        try:
            address = socket.gethostbyname(host)
        except OSError as e:
            return f"cannot resolve {host}: {e}"
        try:
            with socket.create_connection((address, port), timeout=CONNECT_TIMEOUT_S):
                return None
        except OSError as e:
            return f"connect to {host} ({address}) port {port}: {e}"
    return check


def wait_for_celery_broker(tries: int, pause: float) -> None:
    if airflow_config("core", "executor") != "CeleryExecutor":
        return
    url = urlsplit(airflow_config("celery", "broker_url"))
    backend = url.scheme
    port = url.port or next((p for k, p in DEFAULT_PORTS.items() if backend.startswith(k)), None)
    host = url.hostname or "localhost"
    if not port:
        say("The connection details to the broker could not be determined. Connectivity checks were skipped.")
        return
    with_retries(f"broker {backend}://{host}:{port}", tcp_check(host, port), tries, pause)


def main(argv: list[str]) -> None:
    if not argv:
        say("no command")
        sys.exit(2)
    check_gid()
    os.umask(0o002)
    for name in FORBIDDEN:
        if os.environ.get(name):
            say(f"ERROR! {name} is set; the stack must not use it (airflow3.md §8)")
            sys.exit(1)
    tries = int(os.environ.get("CONNECTION_CHECK_MAX_COUNT", "20"))
    pause = float(os.environ.get("CONNECTION_CHECK_SLEEP_TIME", "3"))
    if tries > 0:
        with_retries("airflow db check", airflow_db_check, tries, pause)
    if argv[0] == "bash":
        os.execvp("/bin/bash", ["/bin/bash", *argv[1:]])
    if argv[0] == "python":
        os.execvp("python", ["python", *argv[1:]])
    if argv[0] == "airflow":
        argv = argv[1:]
    if argv and argv[0] in ("scheduler", "celery") and tries > 0:
        wait_for_celery_broker(tries, pause)
    os.execvp("airflow", ["airflow", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
