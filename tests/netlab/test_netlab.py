"""Self-tests of tests/e2e/harness/netlab.py: real namespaces, nftables and cgroups.

Every check here can fail: allowed connections must connect, others must time out AND be
recorded with the exact names the e2e reports, and teardown is checked against the
kernel's own listings (ip netns, ip link, ip route, the cgroup file systems)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness import netlab
from harness.netlab import ALL, Blocked
from harness.procs import free_port, wait_for

PY = "/usr/bin/python3"  # the system Python: readable by the unprivileged user too
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
BLOCKED_TIMEOUT = 0.5    # a dropped SYN is never answered: the connect just times out
E2E = Path(__file__).resolve().parents[1] / "e2e"

# A TCP server on the given ports (0.0.0.0): greets with "<hostname> <port> <peer ip>",
# then echoes lines, so a test can keep a connection open across rule changes. Ports
# written "u<port>" are UDP instead: each datagram is printed as "udp <peer ip> <data>".
SERVER = textwrap.dedent("""
    import socket, sys, threading
    def echo(c, port):
        c.sendall(f"{socket.gethostname()} {port} {c.getpeername()[0]}\\n".encode())
        while data := c.recv(4096):
            c.sendall(data)
    def serve(s):
        while True:
            c, _ = s.accept()
            threading.Thread(target=echo, args=(c, s.getsockname()[1]), daemon=True).start()
    def udp(s):
        while True:
            data, peer = s.recvfrom(4096)
            print("udp", peer[0], data.decode(), flush=True)
    for arg in sys.argv[1:]:
        if arg.startswith("u"):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", int(arg[1:])))
            threading.Thread(target=udp, args=(s,), daemon=True).start()
            continue
        port = int(arg)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(64)
        threading.Thread(target=serve, args=(s,), daemon=True).start()
    print("listening", flush=True)
    threading.Event().wait()
""")

# Connects from inside a host: prints "ok <greeting>", "timeout" or "refused".
CLIENT = textwrap.dedent("""
    import socket, sys
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
        print("ok", c.makefile().readline().strip())
    except socket.timeout:
        print("timeout")
    except ConnectionRefusedError:
        print("refused")
""")


def serve(host, ports, tmp_path, name="server"):
    log = tmp_path / f"{host.name}-{name}.log"
    p = host.start(name, [PY, "-u", "-c", SERVER, *map(str, ports)], ENV, log)
    wait_for(f"{name} on {host.name}", lambda: "listening" in log.read_text(), timeout=10,
             interval=0.02, on_timeout=lambda: p.tail())
    return p


def send_udp(host, ip, port, text):
    code = ("import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
            ".sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))")
    assert host.run([PY, "-c", code, ip, str(port), text], ENV, timeout=10).returncode == 0


def connect_from(host, ip, port, timeout=5.0) -> str:
    res = host.run([PY, "-c", CLIENT, ip, str(port), str(timeout)], ENV, timeout=timeout + 10)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def connect_from_operator(ip, port, timeout=5.0) -> str:
    try:
        with socket.create_connection((ip, port), timeout=timeout) as c:
            return "ok " + c.makefile().readline().strip()
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"


def resolve(host, name, user=None) -> str:
    code = ("import socket, sys; n = sys.argv[1]\n"
            "try: print(' '.join(sorted({a[4][0] for a in socket.getaddrinfo(n, 80, "
            "socket.AF_INET)})))\n"
            "except socket.gaierror as e: print('error', e.args[0])")
    res = host.run([PY, "-c", code, name], ENV, timeout=10, user=user)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def leftovers(tag: str, cidr: str | None = None) -> list[str]:
    """What the kernel and file systems still hold of a lab, from their own listings."""
    out = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    out += [f"netns {l.split()[0]}" for l in netns.splitlines() if l.startswith(tag)]
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True,
                                      text=True).stdout)
    out += [f"link {l['ifname']}" for l in links if l["ifname"].startswith(tag)]
    if cidr:
        routes = subprocess.run(["ip", "-4", "route", "show", "to", "root", cidr],
                                capture_output=True, text=True).stdout.strip()
        out += [f"route {r}" for r in routes.splitlines()]
    out += [f"etc {p}" for p in Path("/etc/netns").glob(f"{tag}-*")] \
        if Path("/etc/netns").exists() else []
    if Path("/run/netlab", tag).exists():
        out.append(f"uts dir /run/netlab/{tag}")
    if Path("/run/netlab-owners", tag).exists():
        out.append(f"owner file /run/netlab-owners/{tag}")
    for root in ("/sys/fs/cgroup", ):
        for dirpath, dirs, _ in os.walk(root):
            out += [f"cgroup {dirpath}/{d}" for d in dirs if d.startswith(tag)]
    return out


def test_security_groups_allow_block_and_record(lab, tmp_path):
    a = lab.add_host("client", ["sg-client"])
    b = lab.add_host("server", ["sg-server"])
    lab.allow("sg-server", "sg-client", 8080)
    server = serve(b, [8080, 9090, "u5353"], tmp_path)
    serve(a, [7070], tmp_path)

    assert connect_from(a, b.ip, 8080) == f"ok {b.hostname} 8080 {a.ip}"
    assert connect_from(a, b.ip, 9090, BLOCKED_TIMEOUT) == "timeout"
    # No rule towards the client's group at all.
    assert connect_from(b, a.ip, 7070, BLOCKED_TIMEOUT) == "timeout"
    # Traffic inside one task never meets its security group (loopback and own address).
    assert connect_from(b, b.ip, 9090).startswith("ok ")
    assert connect_from(b, "127.0.0.1", 9090) == f"ok {b.hostname} 9090 127.0.0.1"

    # Everything but TCP from other hosts is dropped too (the chain's policy), unrecorded.
    send_udp(a, b.ip, 5353, "from-client")
    send_udp(b, "127.0.0.1", 5353, "from-loopback")  # sent after: a barrier, not a sleep
    wait_for("loopback datagram", lambda: "from-loopback" in server.log.read_text(),
             timeout=5, interval=0.02)
    assert "from-client" not in server.log.read_text()

    assert lab.blocked() == sorted([
        Blocked("client", a.ip, "server", b.ip, 9090),
        Blocked("server", b.ip, "client", a.ip, 7070),
    ])
    # Retries of the same attempt are one record, and the set survives further reads.
    assert connect_from(a, b.ip, 9090, BLOCKED_TIMEOUT) == "timeout"
    assert len(lab.blocked()) == 2


def test_operator_access_only_where_allowed(lab, tmp_path):
    a = lab.add_host("api", ["sg-api"])
    b = lab.add_host("db", ["sg-db"])
    lab.allow_from_operator("sg-api", 8080)
    lab.allow("sg-db", "sg-api", 5432)
    serve(a, [8080, 8793], tmp_path)
    serve(b, [5432], tmp_path)

    assert connect_from_operator(a.ip, 8080) == f"ok {a.hostname} 8080 {lab.operator_ip}"
    assert connect_from_operator(a.ip, 8793, BLOCKED_TIMEOUT) == "timeout"
    assert connect_from_operator(b.ip, 5432, BLOCKED_TIMEOUT) == "timeout"
    assert connect_from(a, b.ip, 5432).startswith("ok ")

    # The lab cannot open connections to the root namespace through the operator link.
    # (The listener binds the operator's lab address only: nothing outside the lab sees it.)
    port = free_port()
    with socket.socket() as srv:
        srv.bind((lab.operator_ip, port))
        srv.listen(4)
        assert connect_from(b, lab.operator_ip, port, BLOCKED_TIMEOUT) == "timeout"

    assert lab.blocked() == sorted([
        Blocked("operator", lab.operator_ip, "api", a.ip, 8793),
        Blocked("operator", lab.operator_ip, "db", b.ip, 5432),
        Blocked("db", b.ip, "operator", lab.operator_ip, port),
    ])


def test_allow_any_and_unknown_sources(lab, tmp_path):
    a = lab.add_host("aws", ["sg-aws"])
    b = lab.add_host("worker", ["sg-worker"])
    lab.allow_any("sg-aws", 5000)
    serve(a, [5000, 5001], tmp_path)
    assert connect_from(b, a.ip, 5000).startswith("ok ")
    assert connect_from_operator(a.ip, 5000).startswith("ok ")
    # An address no host holds: added to the bridge's subnet by hand, not via the lab.
    stranger = str(lab.network.network_address + 250)
    subprocess.run(["ip", "-n", b.netns, "addr", "add", f"{stranger}/32",
                    "dev", b._veth_host], check=True)
    res = b.run([PY, "-c", "import socket, sys\n"
                 "s = socket.socket(); s.settimeout(float(sys.argv[3]))\n"
                 "s.bind((sys.argv[4], 0))\n"
                 "try: s.connect((sys.argv[1], int(sys.argv[2]))); print('ok')\n"
                 "except socket.timeout: print('timeout')",
                 a.ip, "5001", str(BLOCKED_TIMEOUT), stranger], ENV, timeout=10)
    assert res.stdout.strip() == "timeout", res
    assert lab.blocked() == [Blocked(f"unknown {stranger}", stranger, "aws", a.ip, 5001)]


def test_rules_follow_hosts_added_later_without_breaking_connections(lab, tmp_path):
    db = lab.add_host("db", ["sg-db"])
    lab.allow("sg-db", "sg-app", 5432)
    lab.allow_from_operator("sg-db", 5432)
    serve(db, [5432], tmp_path)
    # An established connection (the operator's) must survive every later rule update.
    conn = socket.create_connection((db.ip, 5432), timeout=5)
    f = conn.makefile("rw")
    assert f.readline().startswith(db.hostname)

    app = lab.add_host("app", ["sg-app"])   # joins the source group: db's set is rewritten
    assert connect_from(app, db.ip, 5432).startswith("ok ")
    lab.allow("sg-db", "sg-other", 6000)    # another rewrite of db's sets
    other = lab.add_host("other", ["sg-other"])
    assert connect_from(other, db.ip, 5432, BLOCKED_TIMEOUT) == "timeout"

    f.write("still here\n")
    f.flush()
    assert f.readline() == "still here\n"
    conn.close()
    assert lab.blocked() == [Blocked("other", other.ip, "db", db.ip, 5432)]


def test_names_resolve_per_namespace(lab, tmp_path):
    a = lab.add_host("a", ["g"])
    b = lab.add_host("b", ["g"])
    lab.set_hosts(ALL, {"db.example.internal": ["10.77.9.9"]})
    lab.set_hosts(a, {"peer.airflow": [b.ip]})
    lab.set_hosts("b", {"peer.airflow": [a.ip]})
    c = lab.add_host("c", ["g"])  # lab-wide records reach later hosts too

    for h in (a, b, c):
        assert resolve(h, "db.example.internal") == "10.77.9.9"
        assert resolve(h, "localhost") == "127.0.0.1"
    assert resolve(a, "peer.airflow") == b.ip
    assert resolve(b, "peer.airflow") == a.ip
    assert resolve(c, "peer.airflow").startswith("error")
    # The root namespace's own /etc/hosts is untouched.
    assert "peer.airflow" not in Path("/etc/hosts").read_text()

    # A missing name fails at once (no DNS server to wait for).
    started = time.monotonic()
    assert resolve(a, "nowhere.invalid").startswith("error")
    assert time.monotonic() - started < 2

    # A process that is already running sees updates (the file is rewritten in place).
    log = tmp_path / "watch.log"
    watcher = a.start("watch", [PY, "-u", "-c", textwrap.dedent("""
        import socket, time
        last = None
        while True:
            try:
                now = socket.gethostbyname("late.airflow")
            except socket.gaierror:
                now = "missing"
            if now != last:
                print(now, flush=True)
                last = now
            time.sleep(0.02)
    """)], ENV, log)
    wait_for("watcher", lambda: "missing" in log.read_text(), timeout=10, interval=0.02)
    lab.set_hosts(ALL, {"late.airflow": [c.ip]})
    wait_for("update seen", lambda: c.ip in log.read_text(), timeout=5, interval=0.02)
    lab.set_hosts(ALL, {"late.airflow": []})
    wait_for("removal seen", lambda: log.read_text().split().count("missing") == 2,
             timeout=5, interval=0.02)
    watcher.stop()


def test_hostname_per_host(lab, tmp_path):
    a = lab.add_host("a", ["g"])
    b = lab.add_host("b", ["g"], hostname="worker-7.airflow.local")
    assert a.hostname == f"ip-{a.ip.replace('.', '-')}.ec2.internal"
    code = ("import socket; f = socket.getfqdn(); "
            "print(socket.gethostname(), f, socket.gethostbyname(f), "
            "socket.gethostbyname(socket.gethostname().split('.')[0]))")
    for h in (a, b):
        out = h.run([PY, "-c", code], ENV, timeout=10).stdout.split()
        # Airflow's default hostname_callable is getfqdn; get_host_ip_address does
        # gethostbyname(getfqdn()) (airflow/utils/net.py).
        assert out == [h.hostname, h.hostname, h.ip, h.ip], out
        # A long-running process of the host sees what its health checks see.
        log = tmp_path / f"{h.name}.log"
        p = h.start("names", [PY, "-c", code], ENV, log)
        wait_for("names", lambda: not p.running(), timeout=10, interval=0.02)
        assert log.read_text().split() == out
    assert socket.gethostname() not in (a.hostname, b.hostname)


def test_processes_env_user_and_pid(lab, tmp_path):
    uid, gid = netlab.ensure_user()
    assert netlab.ensure_user() == (50000, 0) == (uid, gid)  # idempotent
    h = lab.add_host("a", ["g"], memory_mib=256)
    env = {"PATH": "/usr/bin:/bin", "ONLY": "this"}
    res = h.run(["env"], env, timeout=10)
    assert sorted(res.stdout.split()) == ["ONLY=this", "PATH=/usr/bin:/bin"]
    res = h.run(["sh", "-c", "id -u; id -g; id -G; hostname"], env, timeout=10,
                user=(uid, gid))
    assert res.stdout.split() == ["50000", "0", "0", h.hostname], res
    assert resolve(h, h.hostname, user=(uid, gid)) == h.ip  # the hosts file is readable

    log = tmp_path / "sleep.log"
    p = h.start("sleeper", ["sh", "-c", "echo started $$; exec sleep 300"], env, log,
                user=(uid, gid), cwd="/")
    wait_for("sleeper", lambda: "started" in log.read_text(), timeout=10, interval=0.02)
    # The pid is the container process itself (the entering steps exec), in the cgroup.
    assert log.read_text().split() == ["started", str(p.pid)]
    assert p.pid in h.pids()
    status = dict(l.split(":", 1) for l in Path(f"/proc/{p.pid}/status").read_text().splitlines())
    assert status["Uid"].split() == ["50000"] * 4 and status["Gid"].split() == ["0"] * 4
    assert status["Groups"].split() == []
    assert os.readlink(f"/proc/{p.pid}/cwd") == "/"
    assert os.readlink(f"/proc/{p.pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{p.pid}/ns/uts") != os.readlink("/proc/self/ns/uts")
    p.stop()
    assert not p.running()

    with pytest.raises(subprocess.TimeoutExpired):
        h.run(["sh", "-c", "sleep 30 & sleep 30"], env, timeout=0.5)
    wait_for("timed-out check gone", lambda: not h.pids(), timeout=5, interval=0.02)


def test_memory_limit_kills_and_is_counted(lab):
    h = lab.add_host("w", ["g"], memory_mib=64)
    assert h.oom_kills() == 0
    ok = h.run([PY, "-c", "x = b'x' * (16 << 20); print(len(x))"], ENV, timeout=20)
    assert ok.returncode == 0 and ok.stdout.strip() == str(16 << 20)
    peak_ok = h.memory_peak_bytes()
    assert 16 << 20 < peak_ok <= 64 << 20

    big = h.run([PY, "-c", "x = b'x' * (256 << 20); print('survived')"], ENV, timeout=30)
    assert big.returncode == -signal.SIGKILL, big
    assert "survived" not in big.stdout
    assert h.oom_kills() == 1
    assert h.memory_peak_bytes() <= 64 << 20
    assert h.memory_current_bytes() < 64 << 20
    assert "total_rss" in h.memory_stat() or "anon" in h.memory_stat()


def test_cpu_quota(tmp_path):
    with netlab.Lab("nt", cidr="10.79.0.0/16", enforce_cpu=True) as lab:
        h = lab.add_host("slow", ["g"], cpu_units=256)
        if lab.cgroups.version == 1:
            quota = (lab.cgroups.lab_dirs["cpu"] / "slow" / "cpu.cfs_quota_us").read_text()
        else:
            quota = (lab.cgroups.lab_dirs["unified"] / "slow" / "cpu.max").read_text().split()[0]
        assert quota.strip() == str(256 * 100_000 // 1024)
        busy = ("import time; t = time.monotonic()\n"
                "while time.monotonic() - t < 1.0: pass\n"
                "print(time.process_time())")
        used = float(h.run([PY, "-c", busy], ENV, timeout=20).stdout)
        assert used < 0.6, f"0.25 vCPU task used {used:.2f}s CPU in 1s"
    with netlab.Lab("nt", cidr="10.79.0.0/16", enforce_cpu=False) as lab:
        assert "cpu" not in lab.cgroups.lab_dirs


def test_root_loopback_does_not_reach_lab_servers(lab, tmp_path):
    a = lab.add_host("a", ["g"])
    port = free_port()  # free in the root namespace
    serve(a, [port], tmp_path)
    assert connect_from(a, "127.0.0.1", port).startswith("ok ")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_close_leaves_nothing(tmp_path):
    cidr = "10.78.0.0/16"
    lab = netlab.Lab("nt", cidr=cidr)
    a = lab.add_host("a", ["g"], memory_mib=128, cpu_units=256)
    lab.add_host("b", ["g"])
    lab.set_hosts(ALL, {"x.airflow": [a.ip]})
    p = serve(a, [8080], tmp_path)
    tag = lab.tag
    before = leftovers(tag, cidr)
    assert any(x.startswith("netns") for x in before) and any(x.startswith("cgroup")
                                                               for x in before)
    assert any(x.startswith("route") for x in before) and any(x.startswith("link")
                                                              for x in before)
    with pytest.raises(RuntimeError, match="overlaps"):
        netlab.Lab("nt", cidr="10.78.128.0/17")  # the CIDR is taken while the lab is open
    lab.close()
    assert leftovers(tag, cidr) == []
    assert not p.running() and not Path(f"/proc/{p.pid}").exists()
    lab.close()  # idempotent


def test_cleanup_when_the_body_raises(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with netlab.Lab("nt", cidr="10.78.0.0/16") as lab:
            tag = lab.tag
            h = lab.add_host("a", ["g"], memory_mib=64)
            p = h.start("sleeper", ["sleep", "300"], ENV, tmp_path / "s.log")
            1 / 0
    assert leftovers(tag, "10.78.0.0/16") == []
    assert not Path(f"/proc/{p.pid}").exists()


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from harness import netlab
    lab = netlab.Lab("nk", cidr=sys.argv[2], sweep=False)
    h = lab.add_host("a", ["g"], memory_mib=64)
    p = h.start("sleeper", ["sleep", "300"], {"PATH": "/usr/bin:/bin"}, sys.argv[3])
    print(lab.tag, p.pid, flush=True)
    time.sleep(300)
""")


def _child_lab(tmp_path, cidr):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(E2E), cidr,
                              str(tmp_path / "child-sleeper.log")],
                             stdout=subprocess.PIPE, text=True)
    tag, pid = child.stdout.readline().split()
    return child, tag, int(pid)


def test_sigterm_cleans_up(tmp_path):
    child, tag, sleeper = _child_lab(tmp_path, "10.80.0.0/16")
    try:
        assert leftovers(tag)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=20) == -signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert leftovers(tag, "10.80.0.0/16") == []
    assert not Path(f"/proc/{sleeper}").exists()


def test_sweep_removes_what_a_killed_run_left(tmp_path):
    child, tag, sleeper = _child_lab(tmp_path, "10.81.0.0/16")
    child.kill()  # SIGKILL: no atexit, no handler; the sleeper lives on in its session
    child.wait()
    left = leftovers(tag, "10.81.0.0/16")
    assert any(x.startswith("netns") for x in left) and Path(f"/proc/{sleeper}").exists()
    assert tag in netlab.sweep_stale("nk")
    assert leftovers(tag, "10.81.0.0/16") == []
    wait_for("orphan gone", lambda: not Path(f"/proc/{sleeper}").exists(), timeout=5,
             interval=0.02)


def test_a_new_lab_sweeps_what_a_killed_lab_of_another_prefix_left(tmp_path):
    # What broke CI once: an end-to-end lab ("af") killed with its process kept
    # 10.77.0.0/16, and the self-tests' labs ("nt") refused that CIDR.
    child, tag, sleeper = _child_lab(tmp_path, "10.77.0.0/16")
    child.kill()
    child.wait()
    assert any(x.startswith("route") for x in leftovers(tag, "10.77.0.0/16"))
    with netlab.Lab("nt", cidr="10.77.0.0/16") as lab:
        assert lab.add_host("a", ["g"]).ip.startswith("10.77.")
        assert leftovers(tag) == []
    wait_for("orphan gone", lambda: not Path(f"/proc/{sleeper}").exists(), timeout=5,
             interval=0.02)


def _fake_leftover(tag: str) -> None:
    """The cheapest thing a lab leaves: its hub namespace (found by `<tag>-hub`)."""
    subprocess.run(["ip", "netns", "add", f"{tag}-hub"], check=True)


def test_the_owner_lock_decides_staleness_not_the_pid():
    owners = Path("/run/netlab-owners")
    owners.mkdir(exist_ok=True)
    # pid 1 is alive, but nothing holds the owner lock: the process that made this lab
    # is gone and pid 1 is someone else (pid reuse).
    reused = "nk1a"
    (owners / reused).write_text("12345\n")
    _fake_leftover(reused)
    # The pid in this tag is dead, but the owner file is locked by a live process.
    held = "nk999999999a"
    fd = os.open(owners / held, os.O_RDWR | os.O_CREAT)
    try:
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_EX)
        _fake_leftover(held)
        removed = netlab.sweep_stale("nk")
        assert reused in removed and held not in removed
        assert leftovers(reused) == [] and not (owners / reused).exists()
        assert any(x.startswith("netns") for x in leftovers(held))
    finally:
        os.close(fd)
    # Once the lock is gone, the lab is stale.
    assert held in netlab.sweep_stale("nk")
    assert leftovers(held) == []
