"""End to end: `streams:` (issue 17) with the real `airflow-streams` Lambda in the
emulator, a vendor's SSE stream over TLS, and the stack's real Airflow.

On the `scaled` shape (NAT gateway and SNS alerts on) with the `orders` stream appended
(harness/streams.py says what CloudFormation would create, how it is created here and
where the run differs from AWS: a 24 s manager timeout, the vendor on localhost).

The stream (`scenario`): 180 distinct orders. Paced ones first (0.4 s apart), with the
connection cut once after the 10th; then 9 s of silence (the read deadline is 5 s); then a
burst of 100; then 60 paced ones (0.5 s apart); five events are sent twice under new SSE
ids (a vendor redelivering). Two managers are invoked at the same moment to start it; the
chain then relaunches itself every 14 s or so, each successor reading 5 s beside its
predecessor. The DAG `e2e_stream` is paused, so its runs are created `queued` and stay so.

Then the chain is broken twice, each time mended and restarted: first the successor's
Invoke is refused (the manager role's `lambda:InvokeFunction` statement taken out, so the
emulator's IAM evaluation answers AccessDenied, an acknowledged refusal), then the
successor is invoked but fails at start (its configuration broken; Lambda's async retries
are off, as the template sets). Each time, while nothing holds the stream the vendor sends
20 more orders; once the lease is stale the cause is mended and the watchdog's tick starts
a new chain (resuming from the lease's last event id) and alerts once; a second tick sends
the notice that it recovered, a third nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import threading
import time

import pytest

from harness import infra
from harness import streams as st
from harness.sns import SnsSink
from harness.template import Context

pytestmark = pytest.mark.parametrize("stack", ["scaled"], indirect=True)

BURST = 100


def _timeline(t: st.Timeline) -> None:
    sent: dict[int, dict] = {}

    def add(offset: float, n: int, phase: str) -> int:
        sent[n] = st.order(n, phase)
        return t.add(offset, sent[n])

    def repeat(offset: float, n: int) -> None:
        t.add(offset, sent[n])  # the same data under a new SSE id

    n = 0
    for i in range(20):  # paced: 0 .. 7.6 s
        n += 1
        sse = add(0.4 * i, n, "paced")
        if n == 10:
            t.drop_after = sse
        if n in (12, 15):
            repeat(0.4 * i, {12: 3, 15: 7}[n])
    burst_at = 0.4 * 19 + 9.0  # 9 s of silence
    for _ in range(BURST):
        n += 1
        add(burst_at, n, "burst")
    for k in range(60):
        n += 1
        add(burst_at + 0.5 * (k + 1), n, "paced")
        if k in (5, 10, 35):
            repeat(burst_at + 0.5 * (k + 1), {5: 50, 10: 125, 35: 150}[k])


def _runs(airflow) -> dict[str, dict]:
    """Every run of the stream's DAG, by run id."""
    out, offset = {}, 0
    while True:
        page = airflow.get(f"/api/v2/dags/{st.DAG_ID}/dagRuns", limit=100, offset=offset)
        for r in page["dag_runs"]:
            out[r["dag_run_id"]] = r
        offset += len(page["dag_runs"])
        if not page["dag_runs"] or offset >= page["total_entries"]:
            return out


def _wait_runs(airflow, wanted: set[str], timeout: float) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        runs = _runs(airflow)
        if wanted <= set(runs):
            return runs
        if time.monotonic() > deadline:
            missing = sorted(wanted - set(runs))
            raise AssertionError(f"{len(missing)} events have no DAG run after {timeout:.0f} s: "
                                 f"{missing[:5]}")
        time.sleep(2)


HANDOVERS = 3  # the chain relaunches at least this many times while the scenario runs


def _handovers(reports: list[dict]) -> list[dict]:
    """The manager runs that started their successor."""
    return [r for r in reports if r.get("successor_started")]


def _generations(reports: list[dict]) -> set[int]:
    """The generations of the links that held the lease (a loser's report is left out)."""
    return {r["generation"] for r in reports if r["outcome"] != "lease_held"}


def _iso(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _lease(aws: st.StreamsInAws) -> dict | None:
    for item in aws.items():
        if item["kind"]["S"] == "lease":
            return item
    return None


@pytest.fixture(scope="module")
def sink(stack):
    s = SnsSink(stack.aws.host.netns)
    yield s
    s.close()


@pytest.fixture(scope="module")
def streams(stack, airflow, sink):
    ctx = Context(region=stack.ctx.region, stack_name=stack.ctx.stack_name,
                  stack_id=stack.ctx.stack_id, account=stack.ctx.account,
                  refs=dict(stack.ctx.refs), getatts=dict(stack.ctx.getatts),
                  template=stack.template)
    # The run's CA (the TLS Redis's, when the shape has one) signs the vendor's certificate.
    ca = stack.ca or infra.LocalCa(stack.workdir)
    aws = st.StreamsInAws(stack, ctx, sink.url, ca.cert)
    server = st.StreamServer(stack.aws.host.netns, ca, stack.workdir)
    yield aws, server
    # Ends the chain: its next successor fails at start (as in the broken-chain test).
    try:
        _break_manager(aws)
    finally:
        server.close()


def _manager_env(aws: st.StreamsInAws) -> dict:
    return aws.lam.get_function_configuration(FunctionName=aws.manager)["Environment"]["Variables"]


def _break_manager(aws: st.StreamsInAws) -> dict:
    env = _manager_env(aws)
    aws.lam.update_function_configuration(FunctionName=aws.manager, Environment={
        "Variables": {**env, "STREAM_FORMAT": "broken-by-e2e"}})
    return env


@pytest.fixture(scope="module")
def scenario(stack, airflow, streams):
    aws, server = streams
    airflow.wait_dags([st.DAG_ID], timeout=180)
    _timeline(server.timeline)
    distinct = server.timeline.distinct()
    wanted = {st.run_id_of(i): p for i, p in distinct.items()}
    server.start()
    # Two managers at the same moment (a deploy's start racing a watchdog's, say).
    barrier = threading.Barrier(2)

    def start(chain: str) -> None:
        barrier.wait()
        aws.invoke_manager_async({"chain_id": chain})

    threads = [threading.Thread(target=start, args=(c,)) for c in ("e2e-a", "e2e-b")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    last_offset = server.timeline.entries[-1][1]
    runs = _wait_runs(airflow, set(wanted), timeout=last_offset + 180)
    done = time.time()
    # Redeliveries and the overlaps' second reads come in up to a chain link later; no
    # run may come of them.
    time.sleep(10)
    runs_later = _runs(airflow)
    # Until the manager runs have reported every stored event, and the chain has handed
    # over at least three times (a link hands over 14 s after it starts) and the link
    # those handovers started last has reported too (it stops 5 s after its own
    # handover; under load, with each start slower, CI's run got there after the runs).
    deadline = time.monotonic() + 90
    while True:
        reports = aws.manager_reports()
        if (sum(r["stored"] for r in reports) >= len(distinct)
                and len(_handovers(reports)) >= HANDOVERS
                and max(_generations(reports), default=0) >= HANDOVERS):
            break
        assert time.monotonic() < deadline, f"after 90 s the manager runs reported {reports}"
        time.sleep(2)
    return {"wanted": wanted, "distinct": distinct, "runs": runs, "runs_later": runs_later,
            "sent": len(server.timeline.entries), "drop_after": server.timeline.drop_after,
            "done": done, "reports": aws.manager_reports(), "items": aws.items(),
            "connections": list(server.connections), "first_sent": dict(server.first_sent)}


def test_two_managers_started_at_once_only_one_holds_the_lease(scenario):
    first = {r["chain_id"]: r for r in scenario["reports"]
             if r["chain_id"] in ("e2e-a", "e2e-b") and r["generation"] == 0}
    assert sorted(first) == ["e2e-a", "e2e-b"], scenario["reports"][:4]
    held = [c for c, r in first.items() if r["outcome"] == "lease_held"]
    assert len(held) == 1, first
    loser, = held
    winner = "e2e-b" if loser == "e2e-a" else "e2e-a"
    assert first[loser]["stored"] == 0 and first[loser]["duplicates"] == 0, first[loser]
    assert first[winner]["stored"] > 0, first[winner]
    # Every later link belongs to the winner's chain.
    chains = {r["chain_id"] for r in scenario["reports"]}
    assert chains == {"e2e-a", "e2e-b"}, chains


def test_each_distinct_event_is_stored_once_and_starts_exactly_one_run(scenario):
    wanted, runs = scenario["wanted"], scenario["runs_later"]
    assert set(runs) == set(wanted), (sorted(set(runs) - set(wanted))[:5],
                                      sorted(set(wanted) - set(runs))[:5])
    for run_id, run in runs.items():
        assert run["conf"] == wanted[run_id], (run_id, run["conf"], wanted[run_id])
        assert run["state"] == "queued", (run_id, run["state"])
    events = [i for i in scenario["items"] if i["kind"]["S"] == "event"]
    assert len(events) == len(scenario["distinct"]), len(events)
    reports = scenario["reports"]
    stored = sum(r["stored"] for r in reports)
    duplicates = sum(r["duplicates"] for r in reports)
    assert stored == len(scenario["distinct"]), (stored, reports)
    # The redelivered events at least; the overlaps add the rest.
    assert duplicates >= scenario["sent"] - len(scenario["distinct"]), reports
    assert sum(r["store_failures"] for r in reports) == 0, reports
    print(f"\n[e2e] streams: {len(scenario['distinct'])} distinct events "
          f"({scenario['sent']} sent, plus what overlaps and reconnects resent): "
          f"{stored} stored, {duplicates} duplicates dropped by the conditional put, "
          f"{len(runs)} DAG runs", flush=True)


def test_the_chain_relaunched_and_survived_a_drop_and_a_silence(scenario, streams):
    aws, _ = streams
    reports = scenario["reports"]
    handovers = _handovers(reports)
    generations = _generations(reports)
    assert len(handovers) >= HANDOVERS and max(generations) >= HANDOVERS, reports
    reasons = [line.get("fields", {}).get("reason", "") for line in aws.log_lines(aws.manager_logical)
               if line.get("fields", {}).get("message") == "stream connection ended; reconnecting"]
    # The cut: TLS ends without close_notify, which the client reads as a broken body.
    assert any(r.startswith("reading the stream") for r in reasons), reasons
    assert any(f"no byte for {st.READ_TIMEOUT_SECONDS}" in r for r in reasons), reasons
    # Every reconnect and every successor resumed where the reader was; the cut one at
    # the event it was cut after.
    conns = scenario["connections"]
    assert str(scenario["drop_after"]) in [c["last_event_id"] for c in conns], conns
    resumed = [c for c in conns if c["last_event_id"]]
    assert len(resumed) >= len(handovers) + 2, conns
    print(f"[e2e] streams: {len(handovers)} handovers, {len(conns)} connections "
          f"({len(resumed)} with Last-Event-ID), generations up to {max(generations)}", flush=True)


def test_figures_events_per_second_and_latency(scenario):
    items = {i["identity"]["S"]: int(i["received_at"]["N"]) / 1000
             for i in scenario["items"] if i["kind"]["S"] == "event"}
    burst = [items[i] for i, p in scenario["distinct"].items() if p["phase"] == "burst"]
    store_rate = (len(burst) - 1) / (max(burst) - min(burst))
    runs = scenario["runs_later"]
    latency = {i: _iso(runs[st.run_id_of(i)]["queued_at"]) - scenario["first_sent"][i]
               for i in scenario["distinct"]}
    burst_runs = [_iso(runs[st.run_id_of(i)]["queued_at"])
                  for i, p in scenario["distinct"].items() if p["phase"] == "burst"]
    run_rate = (len(burst_runs) - 1) / (max(burst_runs) - min(burst_runs))
    paced = [v for i, v in latency.items() if scenario["distinct"][i]["phase"] == "paced"]
    everything = list(latency.values())
    assert all(v > 0 for v in everything), min(everything)
    print(f"[e2e] streams figures: store {store_rate:.1f} events/s (burst of {len(burst)}, "
          f"one manager writing); DAG runs {run_rate:.1f}/s through the processor; latency from "
          f"the stream server to the DAG run: paced events median {statistics.median(paced):.2f} s, "
          f"p95 {_pct(paced, 95):.2f} s; all {len(everything)} median "
          f"{statistics.median(everything):.2f} s, p95 {_pct(everything, 95):.2f} s", flush=True)


def _refuse_successor_invoke(aws: st.StreamsInAws):
    """Takes `lambda:InvokeFunction` out of the manager role's policy, so the next
    handover's Invoke is refused (AccessDenied, by the emulator's IAM evaluation); returns
    what puts it back."""
    iam = aws.aws.client("iam")
    role = aws.lam.get_function_configuration(FunctionName=aws.manager)["Role"].rsplit("/", 1)[1]
    originals, removed = {}, 0
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        # botocore decodes the URL-encoded JSON document.
        doc = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        kept = [s for s in doc["Statement"] if "lambda:InvokeFunction" not in s.get("Action", [])]
        if len(kept) != len(doc["Statement"]):
            originals[name] = doc
            removed += len(doc["Statement"]) - len(kept)
            iam.put_role_policy(RoleName=role, PolicyName=name,
                                PolicyDocument=json.dumps({**doc, "Statement": kept}))
    assert removed == 1, f"{role}: {removed} statements allow lambda:InvokeFunction"

    def restore() -> None:
        for name, doc in originals.items():
            iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(doc))
    return restore


def _fail_successor_at_start(aws: st.StreamsInAws):
    """Breaks the manager's configuration, so the next successor is invoked (202) but
    fails at start (Lambda's async retries are off, as the template sets); returns what
    puts it back."""
    env = _break_manager(aws)
    return lambda: aws.lam.update_function_configuration(
        FunctionName=aws.manager, Environment={"Variables": env})


def _broken_chain_is_restarted(aws, server, airflow, sink, break_chain, handed_over: bool,
                               how: str) -> None:
    """Breaks the chain with `break_chain`, sends 20 orders while nothing holds the
    stream, waits for the lease to go stale, mends it, and checks the watchdog: one alert
    and a restart, every order sent meanwhile gets its run, then one recovery notice and
    nothing more; prints `how` it broke with the figures."""
    notes_before = len(sink.notifications())
    before = aws.manager_reports()
    mend = break_chain(aws)
    broken_at = time.time()
    base = len(server.timeline.distinct())
    offset = time.time() - server.started
    later = {}
    for k in range(20):
        payload = st.order(base + k + 1, "while-broken")
        server.timeline.add(offset + 2 + 0.5 * k, payload)
        later[payload["id"]] = payload
    # The running link reaches its handover, the chain ends, the heartbeat stops.
    deadline = time.monotonic() + st.MANAGER_TIMEOUT_SECONDS * 2 + 30
    while True:
        lease = _lease(aws)
        age = time.time() - int(lease["heartbeat_at"]["N"])
        if age > int(st.WATCHDOG_STALE_SECONDS) + 1:
            break
        assert time.monotonic() < deadline, f"the chain still beats ({age:.0f} s ago)"
        time.sleep(1)
    stale_after = time.time() - broken_at
    new = aws.manager_reports()[len(before):]
    outcomes = [r.get("successor_started") for r in new]
    # How the chain ended: its last link handed over to a successor that failed, or its
    # Invoke was refused and it said so.
    assert handed_over in outcomes, new
    mend()
    tick = aws.tick_watchdog()
    check, = tick["streams"]
    assert check["stream"] == st.STREAM and check["health"] == "stale", tick
    assert check["started"] and check["alerted"], tick
    wanted = {st.run_id_of(i): p for i, p in later.items()}
    runs = _wait_runs(airflow, set(wanted), timeout=120)
    for run_id, payload in wanted.items():
        assert runs[run_id]["conf"] == payload
    # The new chain beats; the next tick finds it healthy, alerts no more and says so.
    time.sleep(int(st.MANAGER_TIMINGS["HEARTBEAT_SECONDS"]) * 2)
    second = aws.tick_watchdog()
    check, = second["streams"]
    assert check["health"] == "healthy" and not check["alerted"] and not check["started"], second
    assert check["recovered"], second
    # One alert, then (the watchdog's second tick) one notice that it recovered.
    notes = sink.notifications()[notes_before:]
    assert len(notes) == 2, notes
    alert, recovered = notes
    assert st.STREAM in alert["Subject"] and "recovered" not in alert["Subject"], alert
    assert st.STREAM in recovered["Subject"] and "recovered" in recovered["Subject"], recovered
    third = aws.tick_watchdog()
    assert not third["streams"][0]["alerted"], third
    assert len(sink.notifications()) == notes_before + 2, sink.notifications()
    print(f"[e2e] streams: {how}: stale after {stale_after:.1f} s, restarted by the watchdog "
          f"with one alert {alert['Subject']!r}, then {recovered['Subject']!r}; the "
          f"{len(later)} events sent meanwhile all have their run", flush=True)


def test_a_refused_successor_invoke_is_restarted_by_the_watchdog_with_one_alert(
        scenario, stack, streams, airflow, sink):
    aws, server = streams
    assert sink.notifications() == []
    with stack.expect_violations() as expected:
        _broken_chain_is_restarted(aws, server, airflow, sink, _refuse_successor_invoke,
                                   handed_over=False, how="successor Invoke refused (AccessDenied)")
        denied = stack.wait_for_violation(
            rf"DENIED {aws.manager}: lambda:InvokeFunction on \S+:function:{aws.manager} ", 10,
            expected)
    # Nothing else was refused.
    assert expected.found == [denied], expected.found
    refused = [line for line in aws.log_lines(aws.manager_logical)
               if line.get("fields", {}).get("message", "").startswith("starting the successor failed")]
    assert refused and "AccessDenied" in json.dumps(refused[-1]), refused[-1:]


def test_a_successor_failing_at_start_is_restarted_by_the_watchdog_with_one_alert(
        scenario, streams, airflow, sink):
    aws, server = streams
    _broken_chain_is_restarted(aws, server, airflow, sink, _fail_successor_at_start,
                               handed_over=True, how="successor invoked but failing at start")
    # The successor did start, and stopped on its configuration.
    failed = [line for line in aws.log_lines(aws.manager_logical)
              if "STREAM_FORMAT" in json.dumps(line) and "is not sse or ndjson" in json.dumps(line)]
    assert failed, "no manager run logged the broken configuration"
