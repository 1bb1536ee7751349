"""The UI and REST API reached through the stack's load balancer (stacks/prod.yaml,
`access.mode: load_balancer`), played by a local TLS-terminating reverse proxy that is
configured from the rendered template (harness/balancer.py): its listeners, the target
group's health check path, matcher, interval and thresholds, and Airflow's base URL
(the `UiUrl` output, which every container also has as `AIRFLOW__API__BASE_URL`).

The proxy runs in its own lab host in `LoadBalancerSecurityGroup`, so the template's own
rules decide who reaches whom: the allow-list (`access.allowed_cidrs`) lets the test
process reach 443/80, and `ApiServerFromLoadBalancerIngress` lets the proxy reach the
api-server's 8080. The test process resolves `access.domain` to the proxy (a scoped
getaddrinfo override; /etc/hosts is not touched) and trusts the run's certificate only.
"""

from __future__ import annotations

import contextlib
import html.parser
import http.cookiejar
import json
import os
import signal
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from harness.api import Airflow, ApiError
from harness.balancer import Balancer, matches
from harness.procs import descendants

prod_only = pytest.mark.parametrize("stack", ["prod"], indirect=True)


@pytest.fixture(scope="session")
def balancer(stack):
    b = Balancer(stack)
    try:
        yield b
    finally:
        b.stop()


@contextlib.contextmanager
def resolving(domain: str, ip: str, ports: dict[int, int] | None = None):
    """`domain` resolves to `ip` in this process while the block runs (what the alias
    record does on AWS)."""
    original = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == domain:
            return original(ip, port, *args, **kwargs)
        return original(host, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = original


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def opener(b: Balancer, jar=None, follow=False) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context(cafile=str(b.cert))  # the run's certificate only
    handlers = [urllib.request.HTTPSHandler(context=context)]
    if jar is not None:
        handlers.append(urllib.request.HTTPCookieProcessor(jar))
    if not follow:
        handlers.append(NoRedirect())
    return urllib.request.build_opener(*handlers)


def fetch(op, url, data=None, headers=None, method=None):
    """(status, headers, body) without raising on 3xx/4xx/5xx."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with op.open(req, timeout=60) as r:
            return r.status, r.headers, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode(errors="replace")


class ThroughBalancer(Airflow):
    """The REST API client of harness/api.py, over the balancer's HTTPS."""

    def __init__(self, base, username, password, op):
        super().__init__(base, username, password)
        self.op = op

    def _call(self, method, path, body=None, auth=True, accept="application/json"):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        status, _, text = fetch(self.op, self.base + path, data, headers, method)
        if status >= 400:
            raise ApiError(status, method, path, text)
        return json.loads(text) if text else None


class Inputs(html.parser.HTMLParser):
    """The hidden inputs of a page's forms (FAB's login form carries its CSRF token)."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""


def _ui_login(b: Balancer, username: str, password: str):
    """FAB's login form through the balancer, following redirects while they stay on the
    balancer: (every redirect target, last status, last page, cookie jar)."""
    base = f"https://{b.domain}"
    jar = http.cookiejar.CookieJar()
    ui = opener(b, jar)
    status, headers, page = fetch(ui, f"{base}/auth/login/")
    assert status == 200, (status, page[:500])
    form = Inputs()
    form.feed(page)
    assert "csrf_token" in form.fields, page[:2000]
    fields = {**form.fields, "username": username, "password": password}
    url = f"{base}/auth/login/"
    status, headers, page = fetch(ui, url, urllib.parse.urlencode(fields).encode(),
                                  {"Content-Type": "application/x-www-form-urlencoded",
                                   "Referer": url})
    assert status in (302, 303), (status, page[:1000])
    hops = []
    while status in (301, 302, 303, 307, 308) and len(hops) < 5:
        url = urllib.parse.urljoin(url, headers["Location"])
        hops.append(url)
        if not url.startswith(f"{base}/"):
            break  # off the balancer: this process cannot follow it
        status, headers, page = fetch(ui, url)
    return hops, status, page, jar


@prod_only
def test_the_balancer_is_configured_from_the_template(stack, balancer):
    c = balancer.config
    assert c["health"]["path"] == "/api/v2/monitor/health", c
    assert c["health"]["matcher"] == "200", c
    assert (c["https_port"], c["http_port"], c["target_port"]) == (443, 80, 8080), c
    # The URL Airflow is configured for is the URL it is served at.
    env, _ = stack.container_env("api-server")
    assert env["AIRFLOW__API__BASE_URL"] == balancer.base_url == f"https://{balancer.domain}/"
    assert matches("200", 200) and not matches("200", 503) and matches("200-299", 204)
    waited = balancer.wait_states("healthy", timeout=120)
    print(f"[e2e]   balancer: targets {sorted(balancer.target_states())} healthy after "
          f"{waited:.1f}s", flush=True)


@prod_only
def test_http_is_only_a_redirect_to_https(stack, balancer):
    with resolving(balancer.domain, balancer.ip):
        status, headers, _ = fetch(opener(balancer),
                                   f"http://{balancer.domain}/dags?state=failed")
    assert status == 301, status
    assert headers["Location"] == f"https://{balancer.domain}:443/dags?state=failed"


@prod_only
def test_login_trigger_and_task_log_through_the_balancer(stack, airflow, balancer):
    balancer.wait_states("healthy", timeout=120)
    base = f"https://{balancer.domain}"
    with resolving(balancer.domain, balancer.ip):
        # The UI's login (FAB's form, with its CSRF token), then the UI itself: FAB
        # answers with redirects (/auth/, then the base URL), and every one must stay on
        # the balancer's https URL, which only the right base URL makes them do.
        hops, status, page, jar = _ui_login(balancer, airflow.username, airflow.password)
        off = [h for h in hops if not h.startswith(f"{base}/")]
        assert hops and not off, f"redirected off the balancer: {hops}"
        assert status == 200 and "<html" in page.lower(), (status, hops, page[:500])
        print(f"[e2e]   UI login redirected through {hops}; cookies "
              f"{sorted(c.name for c in jar)}", flush=True)
        assert "_token" in {c.name for c in jar}, "no UI session token after the login"
        # The same form with a wrong password gives no session token.
        other = http.cookiejar.CookieJar()
        status, _, page = fetch(opener(balancer, other, follow=True), f"{base}/auth/login/")
        form = Inputs()
        form.feed(page)
        wrong = {**form.fields, "username": airflow.username, "password": airflow.password + "x"}
        fetch(opener(balancer, other, follow=True), f"{base}/auth/login/",
              urllib.parse.urlencode(wrong).encode(),
              {"Content-Type": "application/x-www-form-urlencoded"})
        assert "_token" not in {c.name for c in other}, "a wrong password must not log in"

        # The REST API: token login, a DAG run, its task log.
        client = ThroughBalancer(base, airflow.username, airflow.password, opener(balancer))
        client.login()
        client.wait_dags(["e2e_python"], timeout=180)
        run_id = client.trigger("e2e_python")
        deadline = time.monotonic() + 300
        state = None
        while time.monotonic() < deadline and state not in ("success", "failed"):
            time.sleep(2)
            state = client.run_state("e2e_python", run_id)
        assert state == "success", f"e2e_python {state}\n{stack.dump_logs(60)}"
        for ti in client.task_instances("e2e_python", run_id):
            log = ""
            for _ in range(30):  # the worker uploads the log once the task process ended
                log = client.task_log("e2e_python", run_id, ti["task_id"], ti["try_number"])
                if "E2E-MARKER" in log:
                    break
                time.sleep(1)
            assert f"E2E-MARKER e2e_python.{ti['task_id']}" in log, log[:2000]


def _signal_api_servers(stack, sig) -> list[int]:
    pids = []
    for c in stack.containers_named("api-server"):
        pids += [c.proc.pid] + descendants(c.proc.pid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return pids


@prod_only
def test_the_health_check_passes_only_while_the_api_server_is_healthy(stack, balancer):
    """Every api-server frozen (SIGSTOP: the port stays open, nothing answers): the
    target group's checks time out and the targets turn unhealthy after the unhealthy
    threshold; thawed, they turn healthy again after the healthy threshold."""
    h = balancer.config["health"]
    balancer.wait_states("healthy", timeout=120)
    pids = _signal_api_servers(stack, signal.SIGSTOP)
    try:
        waited = balancer.wait_states("unhealthy",
                                      timeout=(h["unhealthy"] + 1) * (h["interval"] + h["timeout"]) + 10)
        print(f"[e2e]   balancer: api-servers frozen -> unhealthy after {waited:.1f}s", flush=True)
    finally:
        _signal_api_servers(stack, signal.SIGCONT)
    waited = balancer.wait_states("healthy", timeout=(h["healthy"] + 1) * h["interval"] + 30)
    print(f"[e2e]   balancer: thawed ({len(pids)} processes) -> healthy after {waited:.1f}s",
          flush=True)


@prod_only
@pytest.mark.mutation
def test_mutation_a_base_url_other_than_the_balancers_sends_the_login_elsewhere(
        stack, airflow, balancer):
    """The login check can fail: api-servers configured with the in-VPC URL (what
    `[api] base_url` would be without access.mode) send the browser off the balancer
    after the login."""
    stack.mutate("api-server", env_override={
        "AIRFLOW__API__BASE_URL": f"http://api-server.{stack.namespace}:8080/"})
    balancer.wait_states("healthy", timeout=120)
    with resolving(balancer.domain, balancer.ip):
        hops, _, _, _ = _ui_login(balancer, airflow.username, airflow.password)
    assert hops[-1].startswith(f"http://api-server.{stack.namespace}:8080/"), hops
