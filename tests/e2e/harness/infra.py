"""The local stand-ins for AWS-managed parts: moto (S3, Secrets Manager), PostgreSQL
with TLS (for RDS), redis-server (for the Redis container), and a Lambda Runtime API
plus a ResponseURL server to run the real custom-resource Lambda binary.

All bind 127.0.0.1 on free ports.
"""

from __future__ import annotations

import glob
import json
import os
import queue
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .procs import Proc, free_port, run, wait_for

HINT = "run `bash tests/run-all.sh` once: it installs what the end-to-end tests need"


def need(path_or_cmd: str, what: str) -> str:
    found = path_or_cmd if os.path.isabs(path_or_cmd) else shutil.which(path_or_cmd)
    if not found or not os.path.exists(found):
        raise RuntimeError(f"{what} not found ({path_or_cmd}); {HINT}")
    return found


# --- moto -------------------------------------------------------------------------------

class Moto:
    def __init__(self, venv: Path, workdir: Path):
        exe = need(str(venv / "bin" / "moto_server"), "moto_server (moto[server]==5.2.5)")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        self.proc = Proc("moto", [exe, "-H", "127.0.0.1", "-p", str(self.port)], env,
                         workdir / "moto.log")
        wait_for("moto", lambda: urllib.request.urlopen(self.endpoint + "/moto-api/").status == 200,
                 30, on_timeout=self.proc.tail)

    def client(self, service: str, region: str):
        import boto3
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint,
                            aws_access_key_id="testing", aws_secret_access_key="testing")


# --- PostgreSQL --------------------------------------------------------------------------

def _pg_bindir() -> str:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                        key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError(f"PostgreSQL server binaries not found under /usr/lib/postgresql; {HINT}")
    return os.path.dirname(candidates[-1])


class Postgres:
    """A throwaway cluster with ssl=on (self-signed certificate) that accepts TCP
    connections only over TLS (hostssl), so `sslmode=require` is really exercised."""

    def __init__(self, workdir: Path):
        bindir = _pg_bindir()
        self.port = free_port()
        self.dir = workdir / "pg"
        self.dir.mkdir()
        data = self.dir / "data"
        as_user: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses root; run the cluster as the Debian package's postgres user.
            as_user = [need("runuser", "runuser"), "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(workdir, 0o755)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        run(as_user + [f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust",
                       "-E", "UTF8", "--no-sync"], env=env, cwd=str(self.dir))
        need("openssl", "openssl")
        run(["openssl", "req", "-new", "-x509", "-days", "2", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(data / "server.key"), "-out", str(data / "server.crt")])
        os.chmod(data / "server.key", 0o600)
        if as_user:
            for f in ("server.key", "server.crt"):
                shutil.chown(data / f, "postgres", "postgres")
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(f"""
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.dir}'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
""")
        (data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
            "hostnossl all all 127.0.0.1/32 reject\n")
        self.proc = Proc("postgres", as_user + [f"{bindir}/postgres", "-D", str(data)], env,
                         workdir / "postgres.log", cwd=str(self.dir))
        self.psql_argv = as_user + [f"{bindir}/psql", "-h", str(self.dir), "-p", str(self.port),
                                    "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qAt"]
        wait_for("postgres", lambda: run(self.psql_argv + ["-c", "select 1"], env=env,
                                         check=False).returncode == 0,
                 30, on_timeout=self.proc.tail)
        self.env = env

    def sql(self, statement: str, db: str = "postgres") -> str:
        return run(self.psql_argv + ["-d", db, "-c", statement], env=self.env).stdout

    def create_app_db(self, user: str, password: str, db: str) -> None:
        pw = password.replace("'", "''")
        self.sql(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{pw}'")
        self.sql(f"CREATE DATABASE \"{db}\" OWNER \"{user}\"")


# --- Redis --------------------------------------------------------------------------------

class Redis:
    def __init__(self, workdir: Path, password: str):
        exe = need("redis-server", "redis-server")
        self.port = free_port()
        d = workdir / "redis"
        d.mkdir()
        # The password goes in through stdin, as the stack's Redis container does it.
        config = (f"bind 127.0.0.1\nport {self.port}\nsave \"\"\nappendonly no\ndir {d}\n"
                  f"requirepass {password}\n")
        self.proc = Proc("redis", [exe, "-"], {"PATH": "/usr/bin:/bin"}, workdir / "redis.log",
                         stdin=config)
        cli = need("redis-cli", "redis-cli")
        wait_for("redis", lambda: "PONG" in run(
            [cli, "-h", "127.0.0.1", "-p", str(self.port), "--no-auth-warning", "-a", password,
             "ping"], check=False).stdout, 20, on_timeout=self.proc.tail)


# --- Lambda Runtime API and ResponseURL ---------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class RuntimeApi:
    """Enough of the Lambda Runtime API for one function: queue events, collect results."""

    def __init__(self):
        self.events: "queue.Queue[tuple[str, bytes]]" = queue.Queue()
        self.results: dict[str, tuple[str, bytes]] = {}
        self.init_errors: list[bytes] = []
        self.cond = threading.Condition()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    self.send_error(404)
                    return
                request_id, body = api.events.get()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 300_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:airflow-secrets")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.strip("/").split("/")
                if parts[-2:] == ["init", "error"]:
                    api.init_errors.append(body)
                elif len(parts) == 5 and parts[2] == "invocation":
                    with api.cond:
                        api.results[parts[3]] = (parts[4], body)
                        api.cond.notify_all()
                else:
                    self.send_error(404)
                    return
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def invoke(self, event: dict, timeout: float = 60) -> tuple[str, dict]:
        request_id = str(uuid.uuid4())
        self.events.put((request_id, json.dumps(event).encode()))
        with self.cond:
            ok = self.cond.wait_for(lambda: request_id in self.results or self.init_errors, timeout)
        if self.init_errors:
            raise RuntimeError(f"Lambda init error: {self.init_errors[0]!r}")
        if not ok:
            raise TimeoutError(f"no result from the Lambda for {event.get('LogicalResourceId')}")
        kind, body = self.results[request_id]
        return kind, json.loads(body or b"null")

    def close(self):
        self.server.shutdown()


class ResponseServer:
    """The pre-signed S3 URL CloudFormation hands a custom resource: accepts PUTs."""

    def __init__(self):
        self.puts: list[tuple[str, dict, bytes]] = []
        self.cond = threading.Condition()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_PUT(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with srv.cond:
                    srv.puts.append((self.path, dict(self.headers), body))
                    srv.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_put(self, path: str, timeout: float = 30) -> dict:
        with self.cond:
            self.cond.wait_for(lambda: any(p[0] == path for p in self.puts), timeout)
        for p, headers, body in self.puts:
            if p == path:
                return json.loads(body)
        raise TimeoutError(f"no PUT to the ResponseURL {path}")

    def close(self):
        self.server.shutdown()


def find_secrets_lambda(target_dir: Path) -> Path:
    """The debug build of the airflow-secrets Lambda (its bin has been renamed over time)."""
    for name in ("airflow-secrets-bootstrap", "airflow-secrets", "bootstrap"):
        p = target_dir / "debug" / name
        if p.exists() and (name != "bootstrap" or _is_secrets_lambda(p)):
            return p
    raise RuntimeError(f"the airflow-secrets Lambda binary is not built under {target_dir}/debug; "
                       "build it with `cargo build -p airflow-secrets` (tests/run-all.sh does)")


def _is_secrets_lambda(p: Path) -> bool:
    try:
        return b"AirflowConnectionUrls" in p.read_bytes()
    except OSError:
        return False
