"""An isolated "VPC" for one test session: network namespaces, security groups enforced
with nftables, per-namespace names, and Fargate's per-task resource limits.

Why each piece exists (AWS behaviour it stands for):

* One **host** = one ECS task in `awsvpc` mode: its own network namespace with one
  interface and one private address (an ENI), its own hostname (UTS namespace), its own
  `/etc/hosts`, and one cgroup that holds every process of the task (Fargate enforces the
  task-level `Memory` as a hard limit and `Cpu` as a CPU share of 1024 units per vCPU).
  All containers of a task share the network and UTS namespaces and the cgroup, as the
  containers of one awsvpc task share the ENI and the hostname.
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-task-networking.html
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
* The **hub** namespace holds a Linux bridge that every host's veth is a port of: the
  subnet. Hosts get a default route via the hub's address, and the hub does not forward
  (ip_forward=0) and has no route out, so "the internet" is the other lab hosts only.
* **Security groups** are enforced where AWS enforces them, at the receiving ENI: an
  nftables `input` chain in each host namespace with policy drop. Loopback and
  established/related packets are accepted (security groups are stateful); a new TCP
  connection is accepted only when `(source address, destination port)` is in the host's
  `allowed` set (sources = every host that is a member of a group an ingress rule names,
  like AWS::EC2::SecurityGroupIngress with SourceSecurityGroupId, plus the operator) or the
  port is in the `open` set (a 0.0.0.0/0 rule). Every other SYN is dropped AND recorded in
  the dynamic set `blocked` from the packet path, so the test can fail with exact names.
  https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html
  Egress is all allowed (the default egress rule of a security group). ICMP is dropped
  unless it is related to a tracked connection (AWS also needs an explicit ICMP rule; no
  test needs ping). UDP is dropped silently (nothing in the stack speaks UDP between
  tasks; names come from the hosts file, see below). IPv6 is disabled on lab links.
* The **operator** (this test process, in the root namespace) reaches the lab through one
  veth whose root end has an address inside the lab CIDR (`operator_ip`), so the root
  namespace gains exactly one route: the lab CIDR. Host firewalls treat that address as
  the named source "operator". The lab cannot open connections to the root namespace: a
  bridge-family filter in the hub drops every frame towards the operator port except ARP
  and TCP segments that are not connection openings (replies), and records the SYNs.
* **Names**: `ip netns exec <ns>` bind-mounts each file of /etc/netns/<ns>/ over /etc/ in
  a private mount namespace (ip-netns(8)), so glibc's `files` source (nsswitch `hosts:
  files dns`) reads the host's own hosts file: Cloud Map names, the database endpoint and
  the task's own hostname. resolv.conf points at 127.0.0.1 inside the host, where nothing
  listens on UDP 53: a name missing from the hosts file fails at once (ICMP port
  unreachable on loopback is not rate limited) instead of waiting for a DNS timeout.

Every namespace, link, cgroup and /etc/netns directory is named after a per-lab tag,
`<name_prefix><pid><letter>`, so parallel runs never collide. Each open lab holds an
exclusive flock(2) on `/run/netlab-owners/<tag>`; the kernel drops it when the process
dies, however it dies (SIGKILL, a killed CI job, a session cut at its time limit), so a
lab whose lock can be taken is stale. That test does not depend on pid liveness, which
pid reuse makes unreliable. Every new lab first sweeps stale labs of any prefix
(`sweep_stale()`): a lab that an end-to-end run ("af") leaked would otherwise hold the
CIDR that the self-tests ("nt") want. `Lab.close()` removes everything (also registered
with atexit and SIGTERM/SIGHUP).

Requires root, iproute2 (`ip`, `bridge`), nftables (`nft`) and util-linux (`nsenter`,
`unshare`, `setpriv`, `umount`), and a writable cgroup memory controller (v1 or v2).
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import grp
import ipaddress
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .procs import Proc, descendants

ALL = "all"  # set_hosts scope: every host, including hosts added later

_SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_NETNS_RUN = Path("/run/netns")     # where `ip netns add` keeps its namespace files
_ETC_NETNS = Path("/etc/netns")     # per-namespace /etc overlay read by `ip netns exec`
_UTS_RUN = Path("/run/netlab")      # our persisted UTS namespaces (bind-mounted nsfs files)
_OWNERS = Path("/run/netlab-owners")  # <tag>: flock held by the process that owns the lab
_PERIOD_US = 100_000                # CFS period for the cpu quota (the kernel default)
_TABLE = "netlab"
# Links created later in a namespace get no IPv6 (no DAD, no router solicitations, nothing
# the IPv4-only rules would have to reason about); lo, created with the namespace, keeps ::1.
_NO_IPV6 = ("f=/proc/sys/net/ipv6/conf/default/disable_ipv6; "
            "if [ -e $f ]; then echo 1 > $f; fi; ")
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,2}$")


def _tool(name: str, package: str) -> str:
    path = shutil.which(name, path=_SBIN_PATH)
    if not path:
        raise RuntimeError(f"netlab needs `{name}` (Debian package {package}); it is not installed")
    return path


class _Tools:
    """Absolute paths, resolved once: the argv that enters a host must not depend on the
    container's PATH (it runs before the container's environment applies)."""

    def __init__(self):
        self.ip = _tool("ip", "iproute2")
        self.bridge = _tool("bridge", "iproute2")
        self.nft = _tool("nft", "nftables")
        self.nsenter = _tool("nsenter", "util-linux")
        self.unshare = _tool("unshare", "util-linux")
        self.setpriv = _tool("setpriv", "util-linux")
        self.umount = _tool("umount", "mount")
        self.sh = _tool("sh", "dash")
        self.env = _tool("env", "coreutils")


_TOOLS: _Tools | None = None


def _tools() -> _Tools:
    global _TOOLS
    if _TOOLS is None:
        _TOOLS = _Tools()
    return _TOOLS


def _run(argv: list[str], input: str | None = None, check: bool = True,
         timeout: float = 30) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                         env={"PATH": _SBIN_PATH, "LC_ALL": "C"})
    if check and res.returncode != 0:
        shown = input if input is not None and len(input) < 3000 else ""
        raise RuntimeError(f"netlab: {' '.join(argv)} exited {res.returncode}: "
                           f"{res.stderr.strip() or res.stdout.strip()}"
                           + (f"\ninput:\n{shown}" if shown else ""))
    return res


def _in_netns(ns: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
    """A command in a namespace's network stack only (nft, /proc/sys/net writes): nsenter
    --net is enough there and cheaper than `ip netns exec`, which also builds a mount
    namespace for the /etc overlay and a fresh /sys."""
    return _run([_tools().nsenter, f"--net={_NETNS_RUN / ns}", "--", *argv], **kw)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


# --- cgroups --------------------------------------------------------------------------

def _mountinfo() -> list[tuple[str, str, str]]:
    """(mount point, fstype, super options) of every mount this process sees."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, right = line.split(" - ", 1)
        mount_point = left.split()[4].replace("\\040", " ")
        fstype, _source, opts = right.split()[:3]
        out.append((mount_point, fstype, opts))
    return out


def _own_cgroup_paths() -> tuple[dict[str, str], str | None]:
    """v1 controller -> this process's path, and the v2 path (the `0::` line)."""
    v1: dict[str, str] = {}
    v2 = None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _hid, controllers, path = line.split(":", 2)
        if controllers == "":
            v2 = path
        for c in controllers.split(","):
            if c:
                v1[c] = path
    return v1, v2


class _Cgroups:
    """One cgroup per host, under one directory per lab.

    v2 (unified, preferred when its memory controller is available): the lab directory is
    created at the root of the cgroup2 mount, because a non-root v2 cgroup that holds
    processes cannot enable controllers for its children (the "no internal processes"
    rule, Documentation/admin-guide/cgroup-v2.rst); the root is exempt.
    v1: the lab directory is created under this process's own cgroup of each controller
    (/proc/self/cgroup), so any limit the surrounding sandbox sets still applies to the lab.
    """

    def __init__(self, tag: str, enforce_cpu: bool):
        self.tag = tag
        self.enforce_cpu = enforce_cpu
        self.version = 0
        self.lab_dirs: dict[str, Path] = {}  # controller ("memory"/"cpu"; "unified" for v2)
        problems: list[str] = []
        mounts = _mountinfo()
        v1_paths, _ = _own_cgroup_paths()
        wanted = ["memory"] + (["cpu"] if enforce_cpu else [])

        for mount_point, fstype, _opts in mounts:
            if fstype != "cgroup2":
                continue
            root = Path(mount_point)
            try:
                available = (root / "cgroup.controllers").read_text().split()
            except OSError as e:
                problems.append(f"cgroup2 at {root}: {e}")
                continue
            missing = [c for c in wanted if c not in available]
            if missing:
                problems.append(f"cgroup2 at {root}: controllers {missing} not available "
                                f"(has {available or 'none'}; bound to v1?)")
                continue
            try:
                _write(root / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
                lab = root / tag
                lab.mkdir()
                _write(lab / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
            except OSError as e:
                problems.append(f"cgroup2 at {root}: {e}")
                _rmdir_quiet(root / tag)
                continue
            self.version = 2
            self.lab_dirs = {"unified": lab}
            return

        dirs: dict[str, Path] = {}
        for controller in wanted:
            mount = next((Path(mp) for mp, fstype, opts in mounts
                          if fstype == "cgroup" and controller in opts.split(",")), None)
            if mount is None:
                problems.append(f"cgroup v1: no `{controller}` hierarchy mounted")
                break
            parent = mount / v1_paths.get(controller, "/").lstrip("/")
            try:
                (parent / tag).mkdir()
            except OSError as e:
                problems.append(f"cgroup v1 {controller}: cannot create {parent / tag}: {e}")
                break
            dirs[controller] = parent / tag
        else:
            self.version = 1
            self.lab_dirs = dirs
            return
        for d in dirs.values():
            _rmdir_quiet(d)
        raise RuntimeError(
            "netlab: no writable cgroup for " + " and ".join(wanted) + "; Fargate's per-task "
            "limits cannot be enforced, so the lab refuses to start. Tried: " + "; ".join(problems))

    def add_host(self, name: str, memory_mib: int | None, cpu_units: int | None) -> list[Path]:
        """Create the host's cgroup(s) with their limits; the cgroup.procs files to join."""
        made: list[Path] = []
        try:
            for d in self.lab_dirs.values():
                (d / name).mkdir()
                made.append(d / name)
            if self.version == 2:
                d = self.lab_dirs["unified"] / name
                if memory_mib is not None:
                    _write(d / "memory.max", str(memory_mib << 20))
                    if (d / "memory.swap.max").exists():
                        _write(d / "memory.swap.max", "0")  # Fargate tasks have no swap
                if self.enforce_cpu and cpu_units is not None:
                    _write(d / "cpu.max", f"{_quota_us(cpu_units)} {_PERIOD_US}")
            else:
                d = self.lab_dirs["memory"] / name
                if memory_mib is not None:
                    _write(d / "memory.limit_in_bytes", str(memory_mib << 20))
                    if (d / "memory.memsw.limit_in_bytes").exists():  # memory+swap: no swap
                        _write(d / "memory.memsw.limit_in_bytes", str(memory_mib << 20))
                if self.enforce_cpu and cpu_units is not None:
                    c = self.lab_dirs["cpu"] / name
                    _write(c / "cpu.cfs_period_us", str(_PERIOD_US))
                    _write(c / "cpu.cfs_quota_us", str(_quota_us(cpu_units)))
        except OSError as e:
            for d in made:
                _rmdir_quiet(d)
            raise RuntimeError(f"netlab: cgroup for host {name}: {e}") from e
        return [d / name / "cgroup.procs" for d in self.lab_dirs.values()]

    def memory_dir(self, name: str) -> Path:
        return self.lab_dirs["unified" if self.version == 2 else "memory"] / name

    def current(self, name: str) -> int:
        d = self.memory_dir(name)
        return int((d / ("memory.current" if self.version == 2 else "memory.usage_in_bytes"))
                   .read_text())

    def peak(self, name: str) -> int:
        d = self.memory_dir(name)
        f = d / ("memory.peak" if self.version == 2 else "memory.max_usage_in_bytes")
        if not f.exists():
            raise RuntimeError(f"netlab: {f} does not exist (cgroup v2 needs Linux >= 5.19)")
        return int(f.read_text())

    def oom_kills(self, name: str) -> int:
        d = self.memory_dir(name)
        f = d / ("memory.events" if self.version == 2 else "memory.oom_control")
        for line in f.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        raise RuntimeError(f"netlab: {f} has no oom_kill counter (v1 needs Linux >= 4.13)")

    def stat(self, name: str) -> dict[str, int]:
        out = {}
        for line in (self.memory_dir(name) / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            out[key] = int(value)
        return out

    def pids(self, name: str | None = None) -> set[int]:
        """Processes in one host's cgroup, or in any cgroup of the lab."""
        return _pids_under([d / name if name else d for d in self.lab_dirs.values()])


def _quota_us(cpu_units: int) -> int:
    # 1024 CPU units = 1 vCPU (ECS task definition `Cpu`): quota/period = units/1024.
    return max(1000, cpu_units * _PERIOD_US // 1024)


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _rmdir_quiet(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _pids_under(dirs: Iterable[Path]) -> set[int]:
    pids: set[int] = set()
    for top in dirs:
        if not top.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(top):
            if "cgroup.procs" in files:
                try:
                    text = Path(dirpath, "cgroup.procs").read_text()
                except OSError:
                    continue
                pids.update(int(p) for p in text.split())
    return pids


def _rmdir_tree(top: Path, timeout: float = 10.0) -> None:
    """rmdir a cgroup directory and its children (cgroup dirs hold only virtual files).
    A killed process can keep its cgroup busy (EBUSY) for a while after /proc shows it
    gone or a zombie, until the kernel has finished its exit (slow on a loaded machine, and
    an orphan waits for init to reap it): retry, re-killing whatever is still listed."""
    deadline = time.monotonic() + timeout
    while top.is_dir():
        try:
            for dirpath, dirs, _files in os.walk(top, topdown=False):
                for d in dirs:
                    Path(dirpath, d).rmdir()
            top.rmdir()
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            for pid in _pids_under([top]):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.05)


# --- the lab --------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Blocked:
    """One connection attempt a security group dropped (first SYN of each source/port)."""
    src_host: str
    src_ip: str
    dst_host: str
    dst_ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.src_host} ({self.src_ip}) -> {self.dst_host} ({self.dst_ip}) tcp/{self.port}"


@dataclass(frozen=True)
class _Rule:
    to_sg: str
    source: str  # "sg", "operator", "any" or "cidr" (from_sg holds the block)
    from_sg: str | None
    port: int


_LIVE: dict[str, "Lab"] = {}  # tag -> open lab of this process
_LIVE_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


class Lab:
    """One isolated network for one test session. See the module docstring."""

    def __init__(self, name_prefix: str, cidr: str = "10.77.0.0/16", *, enforce_cpu: bool = True,
                 sweep: bool = True):
        """`name_prefix`: 1-3 characters [a-z0-9], starting with a letter (Linux link names
        are at most 15 characters and carry the tag plus a suffix). `enforce_cpu`: put each
        host's `cpu_units` into a CFS quota; memory limits are always enforced. `sweep`:
        first remove leftovers of dead runs with the same prefix (`sweep_stale`)."""
        if not _PREFIX_RE.match(name_prefix):
            raise ValueError(f"name_prefix {name_prefix!r}: want 1-3 of [a-z0-9], a letter first")
        if os.geteuid() != 0:
            raise RuntimeError("netlab needs root (network namespaces, nftables, cgroups)")
        self.prefix = name_prefix
        self.network = ipaddress.ip_network(cidr)
        if self.network.version != 4 or self.network.prefixlen > 24:
            raise ValueError(f"cidr {cidr}: want an IPv4 network of /24 or larger")
        self.enforce_cpu = enforce_cpu
        self.t = _tools()
        self.hosts: dict[str, Host] = {}
        self._rules: list[_Rule] = []
        self._records_all: dict[str, list[str]] = {}
        self._lock = threading.RLock()
        self._next_index = 1
        self._closed = False
        self._owner_fd: int | None = None
        if sweep:
            sweep_stale()
        with _LIVE_LOCK:
            letter = next((c for c in "abcdefghijklmnopqrstuvwxyz"
                           if f"{name_prefix}{os.getpid()}{c}" not in _LIVE), None)
            if letter is None:
                raise RuntimeError("netlab: more than 26 open labs in one process")
            self.tag = f"{name_prefix}{os.getpid()}{letter}"
            # Claimed before anything named after the tag exists, so every leftover of
            # this lab has an owner file whose lock tells whether its process is alive.
            self._owner_fd = _claim_owner(self.tag)
            _LIVE[self.tag] = self
        _install_handlers()
        self.hub_ns = f"{self.tag}-hub"
        self.bridge = f"{self.tag}br"
        self.op_root = f"{self.tag}opr"   # operator veth, root-namespace end
        self.op_hub = f"{self.tag}oph"    # operator veth, hub end (a bridge port)
        addrs = self.network.hosts()
        self.hub_ip = str(next(addrs))       # .1: the hosts' default gateway (goes nowhere)
        self.operator_ip = str(next(addrs))  # .2: the test process as seen from the lab
        self._free = (str(a) for a in addrs if int(a) - int(self.network.network_address) >= 10)
        try:
            self._check_cidr_free()
            self.cgroups = _Cgroups(self.tag, enforce_cpu)
            self._make_hub()
        except BaseException:
            self.close()
            raise

    # --- set-up ------------------------------------------------------------------------

    def _check_cidr_free(self) -> None:
        """The root namespace gets a route for the lab CIDR: refuse to shadow anything."""
        routes = json.loads(_run([self.t.ip, "-j", "-4", "route", "show", "table", "all"]).stdout
                            or "[]")
        for r in routes:
            dst = r.get("dst", "")
            if dst in ("default", ""):
                continue
            try:
                net = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
            except ValueError:
                continue
            if net.overlaps(self.network):
                raise RuntimeError(
                    f"netlab: lab CIDR {self.network} overlaps route {dst} dev {r.get('dev')} in "
                    "the root namespace (another lab still running, or a real network); pass "
                    "another cidr")

    def _make_hub(self) -> None:
        t, ns = self.t, self.hub_ns
        _run([t.ip, "netns", "add", ns])
        # No forwarding: nothing a host sends to its gateway leaves the lab.
        _in_netns(ns, [t.sh, "-c", _NO_IPV6 + "echo 0 > /proc/sys/net/ipv4/ip_forward"])
        # Before any port exists: frames towards the operator are filtered from the start.
        _in_netns(ns, [t.nft, "-f", "-"], input=self._hub_ruleset())
        _run([t.ip, "-n", ns, "-batch", "-"], input="\n".join([
            "link set lo up",
            # STP off and no forward delay: a port forwards as soon as its link is up.
            f"link add {self.bridge} type bridge stp_state 0 forward_delay 0",
            f"addr add {self.hub_ip}/{self.network.prefixlen} dev {self.bridge}",
            f"link set {self.bridge} up",
        ]) + "\n")
        _run([t.ip, "link", "add", self.op_root, "type", "veth", "peer", "name", self.op_hub,
              "netns", ns])
        if Path(f"/proc/sys/net/ipv6/conf/{self.op_root}").exists():  # IPv6 may be compiled out
            _write(Path(f"/proc/sys/net/ipv6/conf/{self.op_root}/disable_ipv6"), "1")
        _run([t.ip, "-n", ns, "link", "set", self.op_hub, "master", self.bridge, "up"])
        # The address makes the kernel add the one route the root namespace gets: the CIDR.
        _run([t.ip, "-batch", "-"], input=(
            f"addr add {self.operator_ip}/{self.network.prefixlen} dev {self.op_root}\n"
            f"link set {self.op_root} up\n"))
        self._wait_port(self.op_hub)

    def _hub_ruleset(self) -> str:
        # Bridge family: stateless (no conntrack in the bridge hooks here). A TCP segment
        # with SYN and without ACK opens a connection; everything else TCP belongs to a
        # connection the operator opened (its socket RSTs anything else). ARP is needed for
        # the operator's own traffic; UDP, ICMP and IPv6 towards the operator are dropped.
        return f"""
table bridge {_TABLE} {{
    set blocked {{ type ipv4_addr . inet_service; size 65535; flags dynamic; }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        oifname "{self.op_hub}" jump to_operator
    }}
    chain to_operator {{
        ether type arp accept
        ip protocol tcp tcp flags & (syn | ack) == syn update @blocked {{ ip saddr . tcp dport }} drop
        ip protocol tcp accept
        drop
    }}
}}
"""

    def _host_ruleset(self) -> str:
        return f"""
table inet {_TABLE} {{
    set allowed {{ type ipv4_addr . inet_service; }}
    set open {{ type inet_service; }}
    set blocked {{ type ipv4_addr . inet_service; size 65535; flags dynamic; }}
    chain input {{
        type filter hook input priority filter; policy drop;
        iif "lo" accept
        ct state established,related accept
        ip saddr . tcp dport @allowed accept
        tcp dport @open accept
        tcp flags & (syn | ack) == syn update @blocked {{ ip saddr . tcp dport }} drop
    }}
}}
"""

    def _wait_port(self, port: str, timeout: float = 10.0) -> None:
        """Until the bridge port forwards. Its state follows the link's carrier through the
        kernel's link-watch work, which runs asynchronously (up to a second later), so
        traffic sent right after `ip link set up` can be lost: poll the state itself."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        state = "?"
        while True:
            out = _run([self.t.bridge, "-n", self.hub_ns, "-j", "link", "show", "dev", port]).stdout
            info = json.loads(out or "[]")
            state = info[0].get("state", "?") if info else "missing"
            if state == "forwarding":
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"netlab: bridge port {port} is {state} after {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def add_host(self, name: str, security_groups: list[str], hostname: str | None = None,
                 cpu_units: int | None = None, memory_mib: int | None = None) -> "Host":
        """A new task: namespace, address, firewall, hostname, hosts file, cgroup. Rules that
        name its groups take effect on every host before this returns."""
        if not _NAME_RE.match(name) or name in ("hub", ALL):
            raise ValueError(f"host name {name!r}: want [a-z0-9-], at most 32, not hub/all")
        with self._lock:
            if self._closed:
                raise RuntimeError("netlab: lab is closed")
            if name in self.hosts:
                raise ValueError(f"host {name} exists")
            if self._next_index >= 36 * 36:  # two base-36 characters in the link names
                raise RuntimeError("netlab: too many hosts in one lab")
            try:
                ip = next(self._free)
            except StopIteration:
                raise RuntimeError(f"netlab: {self.network} has no free address") from None
            hostname = hostname or f"ip-{ip.replace('.', '-')}.ec2.internal"
            if len(hostname) > 64 or not re.match(r"^[A-Za-z0-9.-]+$", hostname):
                raise ValueError(f"hostname {hostname!r}")
            host = Host(self, name, ip, list(security_groups), hostname, self._next_index,
                        cpu_units, memory_mib)
            self._next_index += 1
            self.hosts[name] = host
            try:
                host._create()
                self._apply_rules()
            except BaseException as e:
                self.hosts.pop(name, None)
                errors: list[str] = []
                _remove_host_resources(self.tag, name, host.netns, self.cgroups.lab_dirs.values(),
                                       errors)
                if errors:
                    e.add_note("netlab: removing the half-made host also failed: " +
                               "; ".join(errors))
                raise
            return host

    # --- security groups ---------------------------------------------------------------

    def allow(self, to_sg: str, from_sg: str, port: int, proto: str = "tcp") -> None:
        """Ingress to members of `to_sg` on `port` from members of `from_sg`."""
        self._add_rule(_Rule(to_sg, "sg", from_sg, _port(port, proto)))

    def allow_from_operator(self, to_sg: str, port: int) -> None:
        """Ingress to members of `to_sg` on `port` from the test process (operator_ip)."""
        self._add_rule(_Rule(to_sg, "operator", None, _port(port, "tcp")))

    def allow_cidr(self, to_sg: str, cidr: str, port: int) -> None:
        """Ingress to members of `to_sg` on `port` from every address in `cidr` (a CidrIp
        rule): the lab hosts and the test process (operator_ip) inside the block."""
        ipaddress.ip_network(cidr)  # a malformed block fails here, not in nft
        self._add_rule(_Rule(to_sg, "cidr", cidr, _port(port, "tcp")))

    def allow_any(self, to_sg: str, port: int) -> None:
        """Ingress to members of `to_sg` on `port` from any address (a 0.0.0.0/0 rule)."""
        self._add_rule(_Rule(to_sg, "any", None, _port(port, "tcp")))

    def _add_rule(self, rule: _Rule) -> None:
        with self._lock:
            if rule not in self._rules:
                self._rules.append(rule)
                self._apply_rules()

    def _wanted(self, host: "Host") -> tuple[set[tuple[str, int]], set[int]]:
        allowed: set[tuple[str, int]] = set()
        open_ports: set[int] = set()
        for r in self._rules:
            if r.to_sg not in host.security_groups:
                continue
            if r.source == "any":
                open_ports.add(r.port)
            elif r.source == "operator":
                allowed.add((self.operator_ip, r.port))
            elif r.source == "cidr":
                block = ipaddress.ip_network(r.from_sg)
                inside = [self.operator_ip] + [h.ip for h in self.hosts.values()]
                allowed.update((ip, r.port) for ip in inside
                               if ipaddress.ip_address(ip) in block)
            else:
                allowed.update((h.ip, r.port) for h in self.hosts.values()
                               if r.from_sg in h.security_groups)
        return allowed, open_ports

    def _apply_rules(self) -> None:
        """Bring every host's `allowed`/`open` sets up to date. Flush + add run in one nft
        transaction (atomic); only the sets change, never the chain, and conntrack entries
        are untouched, so established connections keep flowing."""
        for host in self.hosts.values():
            wanted = self._wanted(host)
            if host._applied == wanted:
                continue
            allowed, open_ports = wanted
            lines = [f"flush set inet {_TABLE} allowed", f"flush set inet {_TABLE} open"]
            if allowed:
                elems = ", ".join(f"{ip} . {port}" for ip, port in sorted(allowed))
                lines.append(f"add element inet {_TABLE} allowed {{ {elems} }}")
            if open_ports:
                lines.append(f"add element inet {_TABLE} open {{ "
                             f"{', '.join(str(p) for p in sorted(open_ports))} }}")
            _in_netns(host.netns, [self.t.nft, "-f", "-"], input="\n".join(lines) + "\n")
            host._applied = wanted

    # --- what was blocked --------------------------------------------------------------

    def blocked(self) -> list[Blocked]:
        """Every dropped connection attempt recorded so far, across all hosts (and towards
        the operator), with the source named by its address: a lab host's name, "operator",
        or "unknown <ip>"."""
        with self._lock:
            names = {h.ip: h.name for h in self.hosts.values()}
            names[self.operator_ip] = "operator"
            out: list[Blocked] = []
            targets = [(h.netns, "inet", h.name, h.ip) for h in self.hosts.values()]
            targets.append((self.hub_ns, "bridge", "operator", self.operator_ip))
            for ns, family, dst_name, dst_ip in targets:
                res = _in_netns(ns, [self.t.nft, "-j", "list", "set", family, _TABLE, "blocked"])
                for src_ip, port in _set_elements(res.stdout):
                    out.append(Blocked(names.get(src_ip, f"unknown {src_ip}"), src_ip,
                                       dst_name, dst_ip, port))
            return sorted(out)

    # --- names -------------------------------------------------------------------------

    def set_hosts(self, host_or_all: "Host | str", records: dict[str, list[str]]) -> None:
        """Name -> addresses in the hosts file of one host (a Host or its name) or of every
        host (`ALL`, also applied to hosts added later). Merges: the names given replace
        their earlier addresses in that scope, an empty list removes the name; a host's own
        records win over lab-wide ones. Files are rewritten in place (see Host._write_hosts)."""
        clean: dict[str, list[str]] = {}
        for name, addrs in records.items():
            if not re.match(r"^[A-Za-z0-9_.-]+$", name):
                raise ValueError(f"host name {name!r}")
            clean[name] = [str(ipaddress.ip_address(a)) for a in addrs]
        with self._lock:
            if host_or_all == ALL:
                targets = list(self.hosts.values())
                store = self._records_all
            else:
                host = host_or_all if isinstance(host_or_all, Host) else self.hosts[host_or_all]
                targets = [host]
                store = host._records
            for name, addrs in clean.items():
                if addrs:
                    store[name] = addrs
                else:
                    store.pop(name, None)
            for h in targets:
                h._write_hosts()

    # --- teardown ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process of the lab and delete every namespace, link, cgroup, UTS
        file and /etc/netns directory it made. Goes on past errors, then raises them."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            errors: list[str] = []
            for host in self.hosts.values():
                for p in host.procs:
                    try:
                        p.stop(grace=10)
                    except Exception as e:  # noqa: BLE001 - collected, raised below
                        errors.append(f"stop {p.name}: {e}")
            cgroups = getattr(self, "cgroups", None)  # absent when __init__ failed early
            cg_dirs = list(cgroups.lab_dirs.values()) if cgroups else []
            _remove_tag(self.tag, cg_dirs, errors)
            with _LIVE_LOCK:
                _LIVE.pop(self.tag, None)
            # Released even after errors: with no owner file, the leftovers fall back to
            # the pid test, under which this process (or any later one, once it has
            # exited) sweeps them.
            _release_owner(self.tag, self._owner_fd)
            self._owner_fd = None
            if errors:
                raise RuntimeError("netlab: cleanup of lab " + self.tag + " failed:\n  " +
                                   "\n  ".join(errors))

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _port(port: int, proto: str) -> int:
    if proto != "tcp":
        raise ValueError(f"protocol {proto!r}: only tcp is modelled")
    if not 0 < int(port) < 65536:
        raise ValueError(f"port {port}")
    return int(port)


def _set_elements(nft_json: str) -> list[tuple[str, int]]:
    out = []
    for item in json.loads(nft_json).get("nftables", []):
        for elem in item.get("set", {}).get("elem", []):
            if "elem" in elem:  # an element with its own expressions: {"elem": {"val": ...}}
                elem = elem["elem"]["val"]
            ip, port = elem["concat"]
            out.append((ip, int(port)))
    return out


# --- hosts ----------------------------------------------------------------------------

class Host:
    """One task: `ip`, `netns`, `hostname`, `security_groups`. Create with Lab.add_host."""

    def __init__(self, lab: Lab, name: str, ip: str, security_groups: list[str], hostname: str,
                 index: int, cpu_units: int | None, memory_mib: int | None):
        self.lab, self.name, self.ip = lab, name, ip
        self.security_groups = tuple(security_groups)
        self.hostname = hostname
        self.cpu_units, self.memory_mib = cpu_units, memory_mib
        self.netns = f"{lab.tag}-{name}"
        idx = _b36(index)
        self._veth_host = f"{lab.tag}{idx}e"  # in the host namespace
        self._veth_hub = f"{lab.tag}{idx}b"   # in the hub, a bridge port
        self.etc_dir = _ETC_NETNS / self.netns
        self.uts_file = _UTS_RUN / lab.tag / f"{name}.uts"
        self.procs: list[HostProc] = []
        self._records: dict[str, list[str]] = {}
        self._applied: tuple | None = None
        self._cgroup_procs: list[Path] = []

    def _create(self) -> None:
        t, lab, ns = self.lab.t, self.lab, self.netns
        _run([t.ip, "netns", "add", ns])
        _in_netns(ns, [t.sh, "-c", _NO_IPV6])
        # The firewall exists before the interface does: there is no unfiltered moment.
        _in_netns(ns, [t.nft, "-f", "-"], input=lab._host_ruleset())
        self._applied = (set(), set())
        _run([t.ip, "-n", lab.hub_ns, "link", "add", self._veth_hub, "type", "veth", "peer",
              "name", self._veth_host, "netns", ns])
        _run([t.ip, "-n", lab.hub_ns, "link", "set", self._veth_hub, "master", lab.bridge, "up"])
        _run([t.ip, "-n", ns, "-batch", "-"], input="\n".join([
            "link set lo up",
            f"link set {self._veth_host} up",
            f"addr add {self.ip}/{lab.network.prefixlen} dev {self._veth_host}",
            f"route add default via {lab.hub_ip}",
        ]) + "\n")
        self.etc_dir.mkdir(parents=True, exist_ok=True)
        self.etc_dir.chmod(0o755)  # readable by the container user whatever the umask
        self._write_hosts()
        (self.etc_dir / "resolv.conf").write_text(
            "# netlab: no DNS in the lab; names come from /etc/hosts. Nothing listens on\n"
            "# 127.0.0.1:53, so a missing name fails at once instead of timing out.\n"
            "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
        (self.etc_dir / "resolv.conf").chmod(0o644)
        # The task's own hostname: a UTS namespace persisted as a bind-mounted nsfs file
        # (unshare(1) --uts=FILE), entered by every process of the host.
        self.uts_file.parent.mkdir(parents=True, exist_ok=True)
        self.uts_file.touch()
        _run([t.unshare, f"--uts={self.uts_file}", "hostname", self.hostname])
        self._cgroup_procs = lab.cgroups.add_host(self.name, self.memory_mib, self.cpu_units)
        lab._wait_port(self._veth_hub)

    def _write_hosts(self) -> None:
        """glibc's files backend re-reads /etc/hosts on every lookup (no nscd here). The
        file is rewritten in place (same inode), never replaced: processes already running
        see it through a bind mount, which pins the inode it was made from."""
        merged = dict(self.lab._records_all)
        merged.update(self._records)
        short = self.hostname.split(".", 1)[0]
        own = self.hostname if short == self.hostname else f"{self.hostname} {short}"
        lines = [
            f"# netlab: /etc/hosts of host {self.name} (bind-mounted by `ip netns exec`)",
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            # First line for its address: reverse lookups (getfqdn) name the task itself.
            f"{self.ip}\t{own}",
        ]
        for name in sorted(merged):
            lines += [f"{addr}\t{name}" for addr in merged[name]]
        data = ("\n".join(lines) + "\n").encode()
        fd = os.open(self.etc_dir / "hosts", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.fchmod(fd, 0o644)
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)

    # --- processes ---------------------------------------------------------------------

    def enter_argv(self, argv: list[str], user: tuple[int, int] | None = None,
                   env: dict[str, str] | None = None) -> list[str]:
        """The argv that runs `argv` inside this host, each step exec'ing the next, so the
        pid that Popen returns is the container process itself:
          sh      joins the host's cgroup(s) first, so every later child is accounted and
                  limited (a cgroup is inherited across fork); then drops the PWD/OLDPWD
                  it exports by itself, so the environment stays exactly `env`;
          ip netns exec   the network namespace, plus a private mount namespace where
                  /etc/netns/<ns>/{hosts,resolv.conf} are bind-mounted over /etc and /sys
                  is the namespace's own;
          nsenter --uts   the task's hostname;
          setpriv         the container user (uid, gid, no supplementary groups), last,
                  because the steps before it need root."""
        t = self.lab.t
        out = [t.sh, "-c",
               'while [ "$1" != -- ]; do echo $$ > "$1" || { echo "netlab: cannot join '
               'cgroup $1" >&2; exit 125; }; shift; done; shift; unset PWD OLDPWD; exec "$@"',
               "netlab-enter", *map(str, self._cgroup_procs), "--",
               t.ip, "netns", "exec", self.netns,
               t.nsenter, f"--uts={self.uts_file}", "--"]
        if user is not None:
            uid, gid = user
            out += [t.setpriv, f"--reuid={int(uid)}", f"--regid={int(gid)}", "--clear-groups",
                    "--"]
        keep = [f"{k}={env[k]}" for k in ("PWD", "OLDPWD") if env and k in env]
        if keep:
            out += [t.env, *keep]
        return out + list(argv)

    def start(self, name: str, argv: list[str], env: dict[str, str], log_path: Path | str,
              user: tuple[int, int] | None = None, cwd: str | None = None,
              stdin: str | None = None) -> "HostProc":
        """A long-running process of this host (a container's command), logged to
        `log_path` (stdout and stderr), in its own session, registered with harness.procs
        for stop-by-pid. `cwd` None means "/" (a container never starts in the test's
        working directory; the image's WORKDIR is the caller's to pass)."""
        if self.lab._closed:
            raise RuntimeError("netlab: lab is closed")
        p = HostProc(self, name, argv, env, Path(log_path), user, cwd or "/", stdin)
        self.procs.append(p)
        return p

    def run(self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 60,
            user: tuple[int, int] | None = None, cwd: str | None = None,
            input: str | None = None) -> subprocess.CompletedProcess:
        """A short command inside the host (a health check: same namespaces, hostname,
        hosts file and cgroup). Output captured as text; never raises on a non-zero exit.
        On timeout the whole process group is killed and subprocess.TimeoutExpired raised.
        `env` None means PATH only (the caller's environment is never leaked in); `cwd` None
        means "/"."""
        env = {"PATH": _SBIN_PATH} if env is None else env
        full = self.enter_argv(argv, user, env)
        p = subprocess.Popen(full, env=env, cwd=cwd or "/", stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True,
                             stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group_and_descendants(p.pid)
            out, err = p.communicate()
            raise subprocess.TimeoutExpired(argv, timeout, out, err) from None
        return subprocess.CompletedProcess(list(argv), p.returncode, out, err)

    # --- resources ---------------------------------------------------------------------

    def memory_current_bytes(self) -> int:
        """Memory charged to the task now (v1 usage_in_bytes / v2 memory.current: includes
        page cache, as the limit does)."""
        return self.lab.cgroups.current(self.name)

    def memory_peak_bytes(self) -> int:
        """Highest charge since the host was created (v1 max_usage_in_bytes / v2 memory.peak)."""
        return self.lab.cgroups.peak(self.name)

    def memory_stat(self) -> dict[str, int]:
        """The cgroup's memory.stat (rss/anon vs cache/file breakdown)."""
        return self.lab.cgroups.stat(self.name)

    def oom_kills(self) -> int:
        """Processes the kernel OOM killer killed in this task because of its limit."""
        return self.lab.cgroups.oom_kills(self.name)

    def pids(self) -> set[int]:
        """Every process in the task's cgroup now."""
        return self.lab.cgroups.pids(self.name)


class HostProc:
    """A harness.procs.Proc (composition) started inside a host. `argv` is the command as
    given; `pid` is that command's own pid (the entering steps exec, they do not fork)."""

    def __init__(self, host: Host, name: str, argv: list[str], env: dict[str, str], log: Path,
                 user: tuple[int, int] | None, cwd: str | None, stdin: str | None):
        self.host = host
        self.argv = list(argv)
        self.user = user
        self.proc = Proc(name, host.enter_argv(argv, user, env), env, log, cwd=cwd, stdin=stdin)

    def __getattr__(self, item):
        return getattr(self.proc, item)

    def __repr__(self) -> str:
        return f"<HostProc {self.proc.name} pid={self.proc.pid} on {self.host.name}>"


def _kill_group_and_descendants(pid: int) -> None:
    pids = [pid] + descendants(pid)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# --- removal (close and sweep) --------------------------------------------------------

def _netns_pids(ns: str) -> set[int]:
    res = _run([_tools().ip, "netns", "pids", ns], check=False)
    return {int(p) for p in res.stdout.split()} if res.returncode == 0 else set()


def _kill_and_wait(pids: set[int], errors: list[str], what: str) -> None:
    pids.discard(os.getpid())
    if not pids:
        return
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [p for p in pids if Path(f"/proc/{p}").exists() and _not_zombie(p)]
        if not left:
            return
        time.sleep(0.05)
    errors.append(f"{what}: processes {sorted(left)} survived SIGKILL")


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _remove_host_resources(tag: str, name: str, netns: str, cg_lab_dirs: Iterable[Path],
                           errors: list[str]) -> None:
    """One host of a live lab (used when add_host fails half way)."""
    cg_lab_dirs = list(cg_lab_dirs)
    pids = _pids_under([d / name for d in cg_lab_dirs]) | _netns_pids(netns)
    _kill_and_wait(pids, errors, f"host {name}")
    uts = _UTS_RUN / tag / f"{name}.uts"
    _umount_and_unlink(uts, errors)
    _netns_del(netns, errors)
    shutil.rmtree(_ETC_NETNS / netns, ignore_errors=True)
    for d in cg_lab_dirs:
        try:
            _rmdir_tree(d / name)
        except OSError as e:
            errors.append(f"rmdir {d / name}: {e}")


def _umount_and_unlink(path: Path, errors: list[str]) -> None:
    if not path.exists():
        return
    if os.path.ismount(path) or _is_mount(path):
        res = _run([_tools().umount, str(path)], check=False)
        if res.returncode != 0:
            errors.append(f"umount {path}: {res.stderr.strip()}")
            return
    try:
        path.unlink()
    except OSError as e:
        errors.append(f"rm {path}: {e}")


def _is_mount(path: Path) -> bool:
    target = str(path)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if line.split()[4].replace("\\040", " ") == target:
            return True
    return False


def _netns_del(ns: str, errors: list[str]) -> None:
    if not (_NETNS_RUN / ns).exists():
        return
    res = _run([_tools().ip, "netns", "del", ns], check=False)
    if res.returncode != 0:
        errors.append(f"ip netns del {ns}: {res.stderr.strip()}")


def _remove_tag(tag: str, cg_lab_dirs: list[Path], errors: list[str]) -> None:
    """Everything named after `tag`: processes (by cgroup and by namespace), UTS files, the
    operator link in the root namespace, namespaces (their links go with them), /etc/netns
    directories, cgroups."""
    namespaces = sorted(p.name for p in _NETNS_RUN.glob(f"{tag}-*")) if _NETNS_RUN.is_dir() else []
    pids = _pids_under(cg_lab_dirs)
    for ns in namespaces:
        pids |= _netns_pids(ns)
    _kill_and_wait(pids, errors, f"lab {tag}")
    uts_dir = _UTS_RUN / tag
    if uts_dir.is_dir():
        for f in uts_dir.iterdir():
            _umount_and_unlink(f, errors)
        try:
            uts_dir.rmdir()
        except OSError as e:
            errors.append(f"rmdir {uts_dir}: {e}")
    # Deleted explicitly: a veth whose peer is in a deleted namespace goes away only when
    # the kernel finishes tearing that namespace down, asynchronously.
    for link in _root_links(tag):
        res = _run([_tools().ip, "link", "del", link], check=False)
        if res.returncode != 0 and link in _root_links(tag):
            errors.append(f"ip link del {link}: {res.stderr.strip()}")
    for ns in namespaces:
        _netns_del(ns, errors)
    if _ETC_NETNS.is_dir():
        for d in _ETC_NETNS.glob(f"{tag}-*"):
            shutil.rmtree(d, ignore_errors=True)
            if d.exists():
                errors.append(f"rm -r {d}: still there")
    for d in cg_lab_dirs:
        try:
            _rmdir_tree(d)
        except OSError as e:
            errors.append(f"rmdir {d}: {e} (processes left: {sorted(_pids_under([d]))})")


def _root_links(tag_or_re: str | re.Pattern) -> list[str]:
    out = _run([_tools().ip, "-j", "link", "show"]).stdout
    names = [l["ifname"] for l in json.loads(out or "[]")]
    if isinstance(tag_or_re, str):
        return [n for n in names if n.startswith(tag_or_re)]
    return [n for n in names if tag_or_re.match(n)]


def _cgroup_roots() -> list[Path]:
    roots = []
    for mount_point, fstype, opts in _mountinfo():
        if fstype == "cgroup2" or (fstype == "cgroup" and
                                   {"memory", "cpu"} & set(opts.split(","))):
            roots.append(Path(mount_point))
    return roots


def _claim_owner(tag: str) -> int:
    """Create `/run/netlab-owners/<tag>` and hold an exclusive lock on it for the lab's
    life. The descriptor is not inherited by children (O_CLOEXEC), so a host process that
    outlives a killed test does not keep its lab looking alive."""
    _OWNERS.mkdir(mode=0o755, exist_ok=True)
    fd = os.open(_OWNERS / tag, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RuntimeError(f"netlab: lab tag {tag} is owned by a live process") from None
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _release_owner(tag: str, fd: int | None) -> None:
    """Unlink before unlocking: a sweeper that opens the file after this sees no owner
    file and no leftovers."""
    (_OWNERS / tag).unlink(missing_ok=True)
    if fd is not None:
        os.close(fd)


def _owner_alive(tag: str) -> bool | None:
    """True/False from the owner lock; None when the lab has no owner file (made by a
    harness from before owner files, or already released)."""
    try:
        fd = os.open(_OWNERS / tag, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the lock if this call took it
    return False


def _tag_pids(tag: str) -> list[int]:
    """Every pid a tag can name: `<prefix><pid><letter>` with a prefix of 1-3 characters
    that may itself end in digits."""
    out = []
    for n in range(1, 4):
        prefix, rest = tag[:n], tag[n:-1]
        if _PREFIX_RE.match(prefix) and rest.isdigit() and tag[-1:].isalpha():
            out.append(int(rest))
    return out


def _tag_is_stale(tag: str) -> bool:
    with _LIVE_LOCK:
        if tag in _LIVE:
            return False
    alive = _owner_alive(tag)
    if alive is not None:
        return not alive
    # No owner file: decide by pid, the only evidence such a lab carries. A reused pid
    # keeps it (never remove a lab that might be live); this process's own pid means a
    # lab it no longer has open.
    pids = _tag_pids(tag)
    return bool(pids) and all(p == os.getpid() or not _pid_alive(p) for p in pids)


def _lab_tags() -> set[str]:
    """Tags of every lab on the machine, from what only a lab makes: its hub namespace
    (`<tag>-hub`, made first), its UTS directory and its owner file."""
    tags: set[str] = set()
    if _NETNS_RUN.is_dir():
        tags.update(p.name[:-len("-hub")] for p in _NETNS_RUN.iterdir()
                    if p.name.endswith("-hub"))
    for d in (_UTS_RUN, _OWNERS):
        if d.is_dir():
            tags.update(p.name for p in d.iterdir())
    return {t for t in tags if _tag_pids(t)}


def _lab_cgroup_dirs(tags: set[str]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for root in _cgroup_roots():
        # Lab directories sit under the creating process's own cgroup, which differs from
        # run to run: search a few levels deep.
        for dirpath, dirs, _files in os.walk(root):
            depth = len(Path(dirpath).relative_to(root).parts)
            for d in list(dirs):
                if d in tags:
                    out.setdefault(d, []).append(Path(dirpath, d))
                    dirs.remove(d)
            if depth >= 4:
                dirs.clear()
    return out


def sweep_stale(prefix: str | None = None) -> list[str]:
    """Remove what labs left behind when their process died (or, for this process, labs
    it no longer has open): processes in their namespaces and cgroups, namespaces, the
    root-namespace link, /etc/netns directories, UTS files, cgroups, the owner file.
    `prefix` limits the sweep to one name prefix; by default every lab is considered.
    Labs of live processes are left alone. Returns the tags removed."""
    if prefix is not None and not _PREFIX_RE.match(prefix):
        raise ValueError(f"prefix {prefix!r}")
    tags = {t for t in _lab_tags()
            if (prefix is None or t.startswith(prefix) and t[len(prefix):-1].isdigit())
            and _tag_is_stale(t)}
    if not tags:
        return []
    cg_dirs = _lab_cgroup_dirs(tags)
    removed, errors = [], []
    for tag in sorted(tags):
        before = len(errors)
        _remove_tag(tag, cg_dirs.get(tag, []), errors)
        if len(errors) == before:
            _release_owner(tag, None)
        removed.append(tag)
    if errors:
        raise RuntimeError("netlab: sweep_stale failed:\n  " + "\n  ".join(errors))
    return removed


# --- cleanup on exit / signals --------------------------------------------------------

def close_all() -> None:
    """Close every lab this process has open (atexit, SIGTERM, SIGHUP)."""
    with _LIVE_LOCK:
        labs = list(_LIVE.values())
    for lab in labs:
        try:
            lab.close()
        except Exception as e:  # noqa: BLE001 - report and go on with the others
            print(f"[netlab] {e}", flush=True)


atexit.register(close_all)


def _install_handlers() -> None:
    """SIGTERM/SIGHUP would end the process without atexit: close the labs first, then let
    the previous disposition act (a Python handler is called, the default re-delivered)."""
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    _HANDLERS_INSTALLED = True
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous):
            close_all()
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        signal.signal(sig, handler)


# --- the container user ---------------------------------------------------------------

def ensure_user(name: str = "airflow", uid: int = 50000, gid: int = 0,
                home: str = "/home/airflow") -> tuple[int, int]:
    """The official image's user (uid 50000, primary group 0, home /home/airflow: the
    image's Dockerfile `adduser ... --uid 50000 --gid 0`), created when missing. Refuses
    a conflicting existing user or uid. Returns (uid, gid) for Host.start(user=...)."""
    try:
        grp.getgrgid(gid)
    except KeyError:
        raise RuntimeError(f"ensure_user: group {gid} does not exist") from None
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        pw = None
    if pw is not None:
        if (pw.pw_uid, pw.pw_gid) != (uid, gid):
            raise RuntimeError(f"ensure_user: user {name} exists as {pw.pw_uid}:{pw.pw_gid}, "
                               f"wanted {uid}:{gid}")
    else:
        try:
            other = pwd.getpwuid(uid)
            raise RuntimeError(f"ensure_user: uid {uid} already belongs to {other.pw_name}")
        except KeyError:
            pass
        _run([_tool("useradd", "passwd"), "--uid", str(uid), "--gid", str(gid),
              "--home-dir", home, "--no-create-home", "--no-log-init", "--shell", "/bin/bash",
              name])
    h = Path(home)
    if not h.exists():
        h.mkdir(parents=True, mode=0o755)
        os.chown(h, uid, gid)
    elif h.stat().st_uid != uid:
        raise RuntimeError(f"ensure_user: {home} exists and is owned by uid {h.stat().st_uid}")
    return uid, gid
