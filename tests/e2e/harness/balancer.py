"""The stack's Application Load Balancer, played by a local TLS-terminating reverse proxy.

Run as a program (`python3 balancer.py CONFIG.json`) inside its own lab host, whose
security group is the template's `LoadBalancerSecurityGroup`: the template's own rule
(`ApiServerFromLoadBalancerIngress`) is what lets it reach the api-server's 8080, and the
template's allow-list rules are what let the test process reach its 443 and 80.
Everything it does comes from the rendered template (`config_from_template`):

* the HTTPS listener (443) terminates TLS with a certificate for `access.domain` (a
  self-signed one made for the run; ACM's stands there on AWS) and forwards to the
  registered targets - the api-server tasks' addresses on the target group's port - with
  the headers an ALB adds (X-Forwarded-For/-Proto/-Port; the Host header is kept);
* the HTTP listener (80) answers only with its redirect action (HTTPS, port 443,
  HTTP_301), built as ELB builds it: `https://#{host}:443/#{path}?#{query}`;
* every target is health-checked on the target group's path, interval, timeout and
  thresholds, and counted healthy only when the status matches the matcher; a target's
  state (initial, healthy, unhealthy) is written to `state_file` as it changes (what
  DescribeTargetHealth would say). As an ALB does, it routes to healthy targets only,
  and to all of them when none is healthy ("fail open").

Standard library only: it runs with any python3 in the lab's network namespace.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade"}


def matches(matcher: str, status: int) -> bool:
    """An ELB matcher: "200", "200,302" or "200-299"."""
    for part in matcher.split(","):
        low, _, high = part.strip().partition("-")
        if int(low) <= status <= int(high or low):
            return True
    return False


# --- the template -------------------------------------------------------------------------

def config_from_template(template: dict, targets: list[str], cert: str, key: str,
                         state_file: str) -> dict:
    """The balancer's settings, read from the rendered template: listeners, redirect,
    target group health check and the URL Airflow is served at."""
    resources = template["Resources"]
    listeners = {r["Properties"]["Protocol"]: r["Properties"] for r in resources.values()
                 if r["Type"] == "AWS::ElasticLoadBalancingV2::Listener"}
    https, http_ = listeners["HTTPS"], listeners["HTTP"]
    forward = https["DefaultActions"][0]
    assert forward["Type"] == "forward", forward
    group_id = forward["TargetGroupArn"]["Ref"]
    group = resources[group_id]["Properties"]
    redirect = http_["DefaultActions"][0]
    assert redirect["Type"] == "redirect", redirect
    return {
        "https_port": https["Port"], "http_port": http_["Port"],
        "redirect": redirect["RedirectConfig"],
        "target_port": group["Port"], "targets": targets,
        "health": {"path": group["HealthCheckPath"], "matcher": group["Matcher"]["HttpCode"],
                   "interval": group["HealthCheckIntervalSeconds"],
                   "timeout": group["HealthCheckTimeoutSeconds"],
                   "healthy": group["HealthyThresholdCount"],
                   "unhealthy": group["UnhealthyThresholdCount"]},
        "base_url": template["Outputs"]["UiUrl"]["Value"],
        "cert": cert, "key": key, "state_file": state_file,
    }


# --- the proxy ----------------------------------------------------------------------------

class Targets:
    """Registered targets and their health, as the target group keeps them."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.state = {t: "initial" for t in cfg["targets"]}
        self.streak = {t: 0 for t in cfg["targets"]}  # >0 successes, <0 failures in a row
        self.next = 0
        self.checks: list[dict] = []
        self.write()

    def write(self) -> None:
        tmp = Path(self.cfg["state_file"] + ".tmp")
        tmp.write_text(json.dumps({"targets": self.state, "checks": self.checks[-50:]}))
        tmp.replace(self.cfg["state_file"])

    def check(self, target: str) -> None:
        h = self.cfg["health"]
        status, error = None, None
        try:
            conn = http.client.HTTPConnection(target, self.cfg["target_port"], timeout=h["timeout"])
            conn.request("GET", h["path"], headers={"User-Agent": "ELB-HealthChecker/2.0"})
            status = conn.getresponse().status
            conn.close()
        except OSError as e:
            error = f"{type(e).__name__}: {e}"
        ok = status is not None and matches(h["matcher"], status)
        with self.lock:
            s = self.streak[target]
            s = max(s, 0) + 1 if ok else min(s, 0) - 1
            self.streak[target] = s
            before = self.state[target]
            if ok and s >= h["healthy"]:
                self.state[target] = "healthy"
            elif not ok and -s >= h["unhealthy"]:
                self.state[target] = "unhealthy"
            self.checks.append({"at": time.time(), "target": target, "status": status,
                                "error": error, "state": self.state[target]})
            if self.state[target] != before or len(self.checks) % 10 == 0:
                self.write()

    def loop(self, target: str) -> None:
        while True:
            started = time.monotonic()
            self.check(target)
            time.sleep(max(0.0, self.cfg["health"]["interval"] - (time.monotonic() - started)))

    def pick(self) -> str:
        with self.lock:
            healthy = [t for t, s in self.state.items() if s == "healthy"]
            pool = healthy or list(self.state)  # none healthy: fail open, as an ALB does
            self.next = (self.next + 1) % len(pool)
            return pool[self.next]


def forwarding_handler(targets: Targets, cfg: dict):
    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            prior = self.headers.get("X-Forwarded-For")
            client = self.client_address[0]
            headers["X-Forwarded-For"] = f"{prior}, {client}" if prior else client
            headers["X-Forwarded-Proto"] = "https"
            headers["X-Forwarded-Port"] = str(cfg["https_port"])
            headers["Connection"] = "close"
            target = targets.pick()
            try:
                conn = http.client.HTTPConnection(target, cfg["target_port"], timeout=60)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except OSError:
                self.send_error(502, "Bad Gateway")
                return
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _forward

        def log_message(self, fmt, *args):
            sys.stdout.write("https %s %s\n" % (self.client_address[0], fmt % args))
            sys.stdout.flush()

    return Forward


def redirect_handler(cfg: dict):
    r = cfg["redirect"]

    class Redirect(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _redirect(self) -> None:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            path, _, query = self.path.partition("?")
            location = f"{r['Protocol'].lower()}://{host}:{r['Port']}{path}"
            if query:
                location += f"?{query}"
            self.send_response(301 if r["StatusCode"] == "HTTP_301" else 302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _redirect

        def log_message(self, fmt, *args):
            sys.stdout.write("http %s %s\n" % (self.client_address[0], fmt % args))
            sys.stdout.flush()

    return Redirect


def serve(cfg: dict) -> None:
    targets = Targets(cfg)
    for t in cfg["targets"]:
        threading.Thread(target=targets.loop, args=(t,), daemon=True).start()
    https = ThreadingHTTPServer(("0.0.0.0", cfg["https_port"]), forwarding_handler(targets, cfg))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # the listener's TLS13-1-2 policy
    context.load_cert_chain(cfg["cert"], cfg["key"])
    https.socket = context.wrap_socket(https.socket, server_side=True)
    http_ = ThreadingHTTPServer(("0.0.0.0", cfg["http_port"]), redirect_handler(cfg))
    threading.Thread(target=http_.serve_forever, daemon=True).start()
    print(f"balancer: listening on {cfg['https_port']} (HTTPS) and {cfg['http_port']} (HTTP)",
          flush=True)
    https.serve_forever()


# --- the harness side ---------------------------------------------------------------------

def self_signed(domain: str, directory: Path) -> tuple[Path, Path]:
    """A certificate and key for `domain`, made for this run (openssl)."""
    import subprocess
    cert, key = directory / "balancer-cert.pem", directory / "balancer-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={domain}", "-addext", f"subjectAltName=DNS:{domain}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class Balancer:
    """The proxy in its own lab host (group `LoadBalancerSecurityGroup`), in front of the
    api-server tasks of `stack`; stopped by pid with `stop()` (and by harness.procs at the
    end of the session, whatever happens)."""

    def __init__(self, stack, name: str = "balancer"):
        self.stack = stack
        self.dir = stack.workdir / name
        self.dir.mkdir(exist_ok=True)
        raw = json.loads((stack.workdir / "template.json").read_text())
        self.base_url = raw["Outputs"]["UiUrl"]["Value"]
        self.domain = self.base_url.split("://", 1)[1].split("/", 1)[0]
        cert, key = self_signed(self.domain, self.dir)
        self.cert = cert
        targets = [t.host.ip for t in stack.tasks.values() if "api-server" in t.containers]
        assert targets, "no api-server task runs"
        self.state_file = self.dir / "targets.json"
        self.config = config_from_template(raw, targets, str(cert), str(key), str(self.state_file))
        (self.dir / "config.json").write_text(json.dumps(self.config, indent=1))
        self.host = stack.lab.add_host(name, ["LoadBalancerSecurityGroup"])
        self.proc = self.host.start(name, [sys.executable, __file__, str(self.dir / "config.json")],
                                    {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, self.dir / "balancer.log")
        self._wait_listening()

    @property
    def ip(self) -> str:
        return self.host.ip

    def _wait_listening(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.ip, self.config["https_port"]), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"the balancer did not listen on {self.ip}:443; "
                           f"{(self.dir / 'balancer.log').read_text()[-2000:]}")

    def target_states(self) -> dict[str, str]:
        return json.loads(self.state_file.read_text())["targets"]

    def wait_states(self, wanted: str, timeout: float) -> float:
        """Seconds until every target is `wanted`; TimeoutError naming the states."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if set(self.target_states().values()) == {wanted}:
                return time.monotonic() - started
            time.sleep(0.5)
        checks = json.loads(self.state_file.read_text())["checks"][-8:]
        raise TimeoutError(f"targets not all {wanted} after {timeout:.0f}s: "
                           f"{self.target_states()}; last checks {checks}")

    def stop(self) -> None:
        self.proc.stop(grace=5)


if __name__ == "__main__":
    serve(json.loads(Path(sys.argv[1]).read_text()))
