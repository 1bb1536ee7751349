"""The local stand-ins for AWS-managed parts: the AWS emulator (tests/aws_emulator, with
IAM), PostgreSQL with TLS (for RDS/Aurora), redis-server with TLS (for ElastiCache), and
a Lambda Runtime API plus a ResponseURL server to run the real custom-resource Lambda.

The emulator, PostgreSQL and Redis listen inside their own lab hosts (harness/netlab.py);
the Runtime API and ResponseURL servers on 127.0.0.1, or on a socket made inside a lab
host (harness/nsbind.py).
"""

from __future__ import annotations

import glob
import json
import os
import queue
import shutil
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .procs import run, wait_for

HINT = "run `bash tests/run-all.sh` once: it installs what the end-to-end tests need"


def need(path_or_cmd: str, what: str) -> str:
    found = path_or_cmd if os.path.isabs(path_or_cmd) else shutil.which(path_or_cmd)
    if not found or not os.path.exists(found):
        raise RuntimeError(f"{what} not found ({path_or_cmd}); {HINT}")
    return found


# --- the AWS emulator ----------------------------------------------------------------------

class Aws:
    """The patched AWS emulator (tests/aws_emulator/server.py: moto with IAM enforcement)
    in its own lab host, the stand-in for AWS's public endpoints: every host may reach it
    (egress is open on AWS too), nothing else is reachable from it.

    The test process itself (and the CLI it runs) signs with `testing`, an unregistered
    key: the operator's administrator. Each task role, execution role and Lambda role
    gets its own key through `register` and is then held to its policy."""

    PORT = 4566

    def __init__(self, venv: Path, repo: Path, lab, workdir: Path, region: str):
        python = need(str(venv / "bin" / "python"), "the tools virtualenv (moto[server]==5.2.5)")
        self.host = lab.add_host("aws", ["aws-endpoint"], hostname="aws.emulator.internal")
        lab.allow_any("aws-endpoint", self.PORT)
        self.region = region
        self.endpoint = f"http://{self.host.ip}:{self.PORT}"
        self.proc = self.host.start(
            "aws", [python, str(repo / "tests" / "aws_emulator" / "server.py"),
                    "--host", "0.0.0.0", "--port", str(self.PORT)],
            {"PATH": f"{venv}/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
             "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_DEFAULT_REGION": region},
            workdir / "aws.log", cwd=str(workdir))
        wait_for("AWS emulator", lambda: urllib.request.urlopen(
            self.endpoint + "/moto-api/", timeout=2).status == 200,
            60, on_timeout=lambda: self.proc.tail(40))
        self.identities: dict[str, str] = {}  # access key id -> name
        self._calls: list[dict] = []  # every decision fetched so far, in order
        self._calls_lock = threading.Lock()  # polled from several threads

    def client(self, service: str, region: str | None = None, key: str = "testing"):
        import boto3
        from botocore.config import Config
        return boto3.client(service, region_name=region or self.region, endpoint_url=self.endpoint,
                            aws_access_key_id=key, aws_secret_access_key="testing",
                            config=Config(retries={"max_attempts": 1, "mode": "standard"}))

    def register(self, name: str, role_arn: str, policies: list[dict]) -> str:
        """A new access key held to `policies`, as the temporary credentials of `role_arn`
        assumed by `name`; returns the key id."""
        key = "AKIA" + uuid.uuid4().hex[:16].upper()
        role_name = role_arn.rsplit("/", 1)[-1]
        account = role_arn.split(":")[4]
        body = {"access_key_id": key, "name": name, "policies": policies,
                "principal": f"arn:aws:sts::{account}:assumed-role/{role_name}/{name}"}
        req = urllib.request.Request(self.endpoint + "/_emulator/identities", method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200, resp.status
        self.identities[key] = name
        return key

    def calls(self) -> list[dict]:
        """Every call a registered identity made, with the emulator's decision. Only the
        decisions since the last fetch are transferred: this is polled while containers
        start, and the list grows with every call."""
        with self._calls_lock:
            since = self._calls[-1]["seq"] if self._calls else 0
            with urllib.request.urlopen(f"{self.endpoint}/_emulator/calls?since={since}",
                                        timeout=10) as resp:
                self._calls.extend(json.loads(resp.read())["calls"])
            return list(self._calls)


# --- PostgreSQL --------------------------------------------------------------------------

def _pg_bindir() -> str:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                        key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError(f"PostgreSQL server binaries not found under /usr/lib/postgresql; {HINT}")
    return os.path.dirname(candidates[-1])


def _user_ids(name: str) -> tuple[int, int]:
    import pwd
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


class Postgres:
    """The stand-in for RDS / Aurora PostgreSQL: a throwaway cluster in its own lab host
    (the database's security groups decide who reaches it), ssl=on with a self-signed
    certificate, and TCP connections accepted only over TLS (hostssl), so
    `sslmode=require` is really exercised. Administered over its Unix socket, from inside
    its host, never over the network."""

    def __init__(self, workdir: Path, host):
        bindir = _pg_bindir()
        self.host = host
        self.port = 5432
        self.dir = workdir / "pg"
        self.dir.mkdir()
        data = self.dir / "data"
        user = _user_ids("postgres")
        shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(workdir, 0o755)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        res = host.run([f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--no-sync"], env=env, user=user, cwd=str(self.dir),
                       timeout=120)
        assert res.returncode == 0, f"initdb failed:\n{res.stdout}\n{res.stderr}"
        need("openssl", "openssl")
        run(["openssl", "req", "-new", "-x509", "-days", "2", "-nodes", "-subj", "/CN=database",
             "-keyout", str(data / "server.key"), "-out", str(data / "server.crt")])
        os.chmod(data / "server.key", 0o600)
        for f in ("server.key", "server.crt"):
            shutil.chown(data / f, "postgres", "postgres")
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(f"""
listen_addresses = '*'
port = {self.port}
unix_socket_directories = '{self.dir}'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
""")
        (data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 0.0.0.0/0 scram-sha-256\n"
            "hostnossl all all 0.0.0.0/0 reject\n")
        shutil.chown(data / "pg_hba.conf", "postgres", "postgres")
        self.proc = host.start("postgres", [f"{bindir}/postgres", "-D", str(data)], env,
                               workdir / "postgres.log", user=user, cwd=str(self.dir))
        self.psql_argv = [f"{bindir}/psql", "-h", str(self.dir), "-p", str(self.port),
                          "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qAt"]
        self.env, self.user = env, user
        wait_for("postgres", lambda: self._psql(["-c", "select 1"]).returncode == 0,
                 30, on_timeout=self.proc.tail)

    def _psql(self, args: list[str]):
        return self.host.run(self.psql_argv + args, env=self.env, user=self.user, timeout=60)

    def sql(self, statement: str, db: str = "postgres") -> str:
        res = self._psql(["-d", db, "-c", statement])
        if res.returncode != 0:
            raise RuntimeError(f"psql failed: {res.stderr[-2000:]}")
        return res.stdout

    def create_app_db(self, user: str, password: str, db: str) -> None:
        """The database and master user RDS creates: not a superuser, but CREATEROLE and
        CREATEDB (the RDS master is a member of rds_superuser, which has both), owning
        the database it was created with."""
        pw = password.replace("'", "''")
        self.sql(f"CREATE ROLE \"{user}\" LOGIN CREATEROLE CREATEDB PASSWORD '{pw}'")
        self.sql(f"CREATE DATABASE \"{db}\" OWNER \"{user}\"")


# --- Redis: ElastiCache with TLS and an AUTH token -----------------------------------------

class TlsRedis:
    """The stand-in for an ElastiCache replication group with in-transit encryption and an
    AUTH token: redis-server with TLS only (no plain port), in its own lab host, serving a
    certificate for the endpoint's name signed by a local CA that the Airflow containers
    trust (ElastiCache's certificates chain to Amazon's roots, which the image trusts)."""

    def __init__(self, workdir: Path, host, endpoint: str, password: str, ca):
        exe = need("redis-server", "redis-server")
        self.host, self.port = host, 6379
        d = workdir / "redis"
        d.mkdir()
        cert, key = ca.issue(endpoint, d)
        config = (f"bind 0.0.0.0\nport 0\ntls-port {self.port}\ntls-cert-file {cert}\n"
                  f"tls-key-file {key}\ntls-ca-cert-file {ca.cert}\ntls-auth-clients no\n"
                  f"save \"\"\nappendonly no\ndir {d}\nrequirepass {password}\n")
        self.proc = host.start("redis", [exe, "-"], {"PATH": "/usr/bin:/bin"},
                               workdir / "redis.log", cwd=str(d), stdin=config)
        cli = need("redis-cli", "redis-cli")
        wait_for("redis (TLS)", lambda: "PONG" in host.run(
            [cli, "--tls", "--cacert", str(ca.cert), "-h", endpoint, "-p", str(self.port),
             "--no-auth-warning", "-a", password, "ping"], timeout=10).stdout,
            20, on_timeout=self.proc.tail)


class LocalCa:
    """A certificate authority for the run: signs the TLS Redis certificate."""

    def __init__(self, workdir: Path):
        self.dir = workdir / "ca"
        self.dir.mkdir()
        self.cert, key = self.dir / "ca.crt", self.dir / "ca.key"
        run(["openssl", "req", "-new", "-x509", "-days", "2", "-nodes", "-subj",
             "/CN=airflow-stack e2e CA", "-keyout", str(key), "-out", str(self.cert)])
        self.key = key
        os.chmod(self.dir, 0o755)
        os.chmod(self.cert, 0o644)

    def issue(self, name: str, into: Path) -> tuple[Path, Path]:
        key, csr, cert = into / "server.key", into / "server.csr", into / "server.crt"
        ext = into / "san.ext"
        ext.write_text(f"subjectAltName=DNS:{name}\n")
        run(["openssl", "req", "-new", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key),
             "-out", str(csr)])
        run(["openssl", "x509", "-req", "-days", "2", "-in", str(csr), "-CA", str(self.cert),
             "-CAkey", str(self.key), "-CAcreateserial", "-extfile", str(ext), "-out", str(cert)])
        return cert, key


# --- Lambda Runtime API and ResponseURL ---------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    @classmethod
    def on(cls, sock, handler) -> "_Server":
        """A server on an already bound and listening socket (one made inside a lab
        host's namespace by nsbind.listen_in), or on 127.0.0.1 when `sock` is None."""
        if sock is None:
            return cls(("127.0.0.1", 0), handler)
        server = cls(sock.getsockname(), handler, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        server.server_address = sock.getsockname()
        return server


class RuntimeApi:
    """Enough of the Lambda Runtime API for one function: queue events, collect results."""

    def __init__(self, sock=None, function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:airflow-secrets"):
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
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", function_arn)
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

        self.server = _Server.on(sock, Handler)
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
        self.server.server_close()


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
