"""`scan --broker` and `ghostport worker`: a real redis-server on a Unix socket only, and
workers in two network namespaces ("segments") with different services on the same
127.0.10.x addresses, both reaching the broker through the socket."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest

from scanner.shards import finished_shards
from scanner.store.database import open_store
from tests.conftest import REPO, Netns
from tests.rabbitmq import RabbitServer, rabbitmq_unavailable_reason

pytestmark = [pytest.mark.slow, pytest.mark.netns]

LAB_TCP = "7,9,13,19,23,37,79,412,3416"
B_SERVICES = ("tcp:127.0.10.2:2323:login: ", "tcp:127.0.10.4:5050:hello")
PORTS = f"T:{LAB_TCP},2323,5050"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    """A real redis-server listening on a Unix socket only (--port 0)."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (Debian package redis-server)")
    sock = tmp_path / "redis.sock"
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sock.exists(), "redis-server did not start"
        yield f"redis+socket://{sock}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _worker(ns: Netns, url: str, vantage: str, *extra: str) -> subprocess.Popen[str]:
    return ns.spawn(
        sys.executable,
        "-m",
        "scanner",
        "worker",
        "--broker",
        url,
        "--vantage",
        vantage,
        "--concurrency",
        "1",
        *extra,
    )


def _segment_a(ns: Netns) -> None:
    """The emulated lab on 127.0.10.1-5."""
    lab = ns.spawn(sys.executable, "-m", "scanner", "lab", "--base", "127.0.10.0")
    assert lab.stdout is not None
    for line in lab.stdout:
        if "lab running" in line:
            return
    raise AssertionError(lab.stderr.read() if lab.stderr else "the lab did not start")


def _scan(url: str, *args: str, timeout: float = 180) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scanner",
            "scan",
            "-q",
            "--no-db",
            "--json",
            "-",
            "--broker",
            url,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )
    document = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, document, done.stderr


def _keyed(results: list[dict[str, Any]]) -> dict[tuple[str, int, str], tuple[Any, ...]]:
    return {
        (r["host"], r["port"], r["proto"]): (
            r["state"],
            (r["service"] or {}).get("id"),
            (r["service"] or {}).get("protocol"),
        )
        for r in results
    }


@pytest.fixture
def segments(netns: Netns) -> Iterator[tuple[Netns, Netns]]:
    """Two namespaces: a runs the lab, b two plain listeners, on the same addresses."""
    other = Netns(f"{netns.name}-b")
    subprocess.run(["ip", "netns", "add", other.name], check=True, capture_output=True)
    try:
        other.run("ip", "link", "set", "lo", "up")
        _segment_a(netns)
        other.serve(*B_SERVICES)
        yield netns, other
    finally:
        other.cleanup()


def test_two_vantages_return_both_segments_in_one_document(
    broker: str, segments: tuple[Netns, Netns]
) -> None:
    a, b = segments
    _worker(a, broker, "a")
    _worker(b, broker, "b")
    common = ["-p", PORTS, "--all-states", "--seed", "11"]
    # When one scan runs from both vantages over the same addresses
    rc, document, err = _scan(
        broker, *common, "--vantage", "a=127.0.10.1-5", "--vantage", "b=127.0.10.1-5"
    )
    assert rc in (0, 1), err
    assert document["complete"] is True
    by_vantage = {
        v: _keyed([r for r in document["results"] if r["vantage"] == v]) for v in ("a", "b")
    }
    assert {r["vantage"] for r in document["results"]} == {"a", "b"}
    # Then each vantage's results are exactly what a scan inside its segment sees
    for ns, name in ((a, "a"), (b, "b")):
        _, direct, direct_err = ns.scan(*common, "--no-db", "127.0.10.1-5")
        assert by_vantage[name] == _keyed(direct["results"]), (name, direct_err)
    assert by_vantage["b"]["127.0.10.2", 2323, "tcp"][0] == "open"
    assert by_vantage["a"]["127.0.10.2", 2323, "tcp"][0] == "closed"
    assert sum(1 for v in by_vantage["a"].values() if v[0] == "open") > 2
    assert document["summary"]["probes_done"] == document["summary"]["probes_total"]
    assert document["summary"]["probes_total"] == 2 * 5 * 11


def test_a_worker_killed_mid_shard_is_replaced_and_nothing_is_lost_or_doubled(
    broker: str, netns: Netns
) -> None:
    # Given one segment (the lab) and a clean run's results
    _segment_a(netns)
    args = [
        "-p",
        "T:1-200",
        "--all-states",
        "--seed",
        "3",
        "--rate",
        "100",
        "--shards",
        "1",
        "--vantage",
        "a=127.0.10.1-5",
        "--shard-timeout",
        "120",
    ]
    first = _worker(netns, broker, "a", "--redeliver-after", "6")
    rc, clean, err = _scan(broker, *args)
    assert rc in (0, 1) and clean["complete"], err
    # When the scan runs again and its worker is killed with SIGKILL in the middle
    scan = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scanner",
            "scan",
            "-q",
            "--no-db",
            "--json",
            "-",
            "--broker",
            broker,
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        time.sleep(4)  # the shard (1,000 probes at 100/s) is under way
        assert scan.poll() is None
        victims = [psutil.Process(first.pid), *psutil.Process(first.pid).children(recursive=True)]
        for victim in victims:
            os.kill(victim.pid, signal.SIGKILL)
        first.wait(timeout=10)
        # And another worker starts
        _worker(netns, broker, "a", "--redeliver-after", "6")
        out, err = scan.communicate(timeout=240)
    finally:
        if scan.poll() is None:
            scan.kill()
            scan.wait()
    # Then the scan completes with exactly the clean run's results, each once
    assert scan.returncode in (0, 1), err
    document = json.loads(out)
    assert document["complete"] is True
    keys = [(r["host"], r["port"], r["proto"]) for r in document["results"]]
    assert len(keys) == len(set(keys)) == 5 * 200
    assert _keyed(document["results"]) == _keyed(clean["results"])
    assert document["summary"]["states"] == clean["summary"]["states"]


def test_a_worker_refuses_a_shard_outside_its_scope_and_the_scan_says_so(
    broker: str, netns: Netns
) -> None:
    _worker(netns, broker, "a", "--scope", "127.0.10.1")
    rc, document, err = _scan(
        broker, "-p", "T:9", "--vantage", "a=127.0.10.1-3", "--shard-timeout", "60"
    )
    assert rc == 2
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    assert "a worker refused shard" in lines[0] and "(vantage a)" in lines[0], err
    assert "127.0.10.2 is outside the allowed scope" in lines[0], err
    assert "Traceback" not in err
    assert document.get("complete") is not True


def test_an_unreachable_broker_is_one_clear_line_without_its_password(tmp_path: Path) -> None:
    rc, _, err = _scan(
        "redis://scanner:hunter2@127.0.0.1:1/0", "-p", "T:9", "--vantage", "a=127.0.0.1"
    )
    assert rc == 2
    assert "hunter2" not in err
    assert "broker redis://scanner:***@127.0.0.1:1/0 cannot be reached" in err


def test_the_history_keeps_both_vantages_of_one_address(
    broker: str, segments: tuple[Netns, Netns], tmp_path: Path
) -> None:
    a, b = segments
    _worker(a, broker, "a")
    _worker(b, broker, "b")
    db = f"sqlite:///{tmp_path / 'scans.db'}"
    # When a scan over the same addresses from both vantages is recorded in the history
    done = subprocess.run(
        [
            *(sys.executable, "-m", "scanner", "scan", "-q", "--json", "-", "--db", db),
            *("--broker", broker, "-p", "T:23,2323,5050", "--all-states", "--seed", "5"),
            *("--vantage", "a=127.0.10.1-5", "--vantage", "b=127.0.10.1-5"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=REPO,
    )
    assert done.returncode in (0, 1), done.stderr
    document = json.loads(done.stdout)
    # Then the history holds every result of both segments, as the JSON does
    with open_store(db) as store:
        stored = store.document(store.resolve_ref("last"))
    assert len(document["results"]) == 2 * 5 * 3
    stored_keys = {(r.vantage, r.host, r.port, r.state.value) for r in stored.results}
    json_keys = {(r["vantage"], r["host"], r["port"], r["state"]) for r in document["results"]}
    assert stored_keys == json_keys
    assert ("b", "127.0.10.2", 2323, "open") in stored_keys
    assert ("a", "127.0.10.2", 2323, "closed") in stored_keys


class _Log:
    """A process's stderr, read as it comes (a full pipe would stall the process)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        stream = process.stderr
        assert stream is not None

        def read() -> None:
            for line in stream:
                self._queue.put(line)
            self._queue.put(None)

        threading.Thread(target=read, daemon=True).start()

    def wait_for(self, *needles: str, limit: float = 60) -> str:
        """The first line holding every needle; fails when the process ends or `limit`
        seconds pass without one (a bound on waiting, not a claim about speed)."""
        while True:
            try:
                line = self._queue.get(timeout=limit)
            except queue.Empty:
                raise AssertionError(f"no line with {needles} in:\n{''.join(self.lines)}") from None
            if line is None:
                raise AssertionError(f"exited without {needles}:\n{''.join(self.lines)}")
            self.lines.append(line)
            if all(n in line for n in needles):
                return line

    def rest(self, limit: float = 60) -> list[str]:
        """Every line until the process closes its stderr (call once it is stopping)."""
        while True:
            try:
                line = self._queue.get(timeout=limit)
            except queue.Empty:
                raise AssertionError(f"stderr not closed:\n{''.join(self.lines)}") from None
            if line is None:
                return self.lines
            self.lines.append(line)


def _count_probes(ns: Netns) -> None:
    """An nftables counter on every packet from the namespace to the lab's addresses."""
    ns.nft(
        "table inet gp_probes {\n"
        "  chain out {\n"
        "    type filter hook output priority 0; policy accept;\n"
        "    ip daddr 127.0.10.0/24 counter\n"
        "  }\n"
        "}\n"
    )


def _probes_sent(ns: Netns) -> int:
    listing = ns.run("nft", "list", "chain", "inet", "gp_probes", "out").stdout
    match = re.search(r"ip daddr 127\.0\.10\.0/24 counter packets (\d+)", listing)
    assert match, listing
    return int(match.group(1))


def _redis(url: str) -> Any:
    import redis

    return redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"))


ONE_SHARD = ("-p", "T:2323", "--shards", "1", "--vantage", "b=127.0.10.1")
"""One shard of a scan of the listener in the namespace, for vantage b."""

ScanRun = Callable[..., tuple[int, dict[str, Any], str]]


def _a_live_shard_is_scanned(netns: Netns, run: ScanRun) -> dict[str, Any]:
    """The control of the dropped-shard tests: the same worker does scan a live
    coordinator's shard, so the probe counter would have seen a scan. Its document."""
    rc, document, err = run(*ONE_SHARD, "--shard-timeout", "60")
    assert rc in (0, 1), err
    assert [(r["port"], r["state"]) for r in document["results"]] == [(2323, "open")]
    assert _probes_sent(netns) > 0
    return document


def test_a_shard_no_worker_took_expires_and_a_later_worker_never_scans_it(
    broker: str, netns: Netns
) -> None:
    # Given a segment with a listener, a counter on every packet sent towards it, and no
    # worker for its vantage yet
    netns.serve("tcp:127.0.10.1:2323:login: ")
    _count_probes(netns)
    # When a scan for that vantage runs out of --shard-timeout
    rc, document, err = _scan(broker, *ONE_SHARD, "--shard-timeout", "2")
    # Then it fails with the clear error, as before
    assert rc == 2, err
    assert "shard 0 (vantage b): no word from any worker for 2 s" in err, err
    assert "Traceback" not in err
    assert document.get("complete") is not True
    # When a worker for that vantage starts afterwards
    worker = _worker(netns, broker, "b", "--log-level", "INFO")
    log = _Log(worker)
    # Then it discards the expired shard instead of running it
    log.wait_for("Discarding revoked task: ghostport.shard[")
    client = _redis(broker)
    try:
        assert client.llen("ghostport.b") == 0  # taken off the queue, not left for another
        assert not list(client.scan_iter("ghostport.batches.*"))  # no batch was published
    finally:
        client.close()
    assert _probes_sent(netns) == 0
    # And the same worker does scan a live coordinator's shard (so the counter would have
    # seen a scan)
    document = _a_live_shard_is_scanned(netns, partial(_scan, broker))
    assert document["complete"] is True
    assert "Traceback" not in "".join(log.lines)


@pytest.fixture
def rabbitmq(netns: Netns) -> Iterator[str]:
    """A real RabbitMQ on 127.0.0.1:5672 inside the test's namespace only."""
    reason = rabbitmq_unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = RabbitServer(netns.name)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()


def _scan_in(ns: Netns, url: str, *args: str) -> tuple[int, dict[str, Any], str]:
    return ns.scan("--no-db", "--broker", url, *args, timeout=180)


def test_a_scan_through_rabbitmq_returns_what_a_local_scan_sees(
    rabbitmq: str, netns: Netns
) -> None:
    # Given RabbitMQ, the lab and a worker in one namespace (coordinator in it too)
    _segment_a(netns)
    _worker(netns, rabbitmq, "a")
    common = ["-p", PORTS, "--all-states", "--seed", "5"]
    # When a scan runs as two shards through amqp://
    rc, document, err = _scan_in(
        netns, rabbitmq, *common, "--shards", "2", "--vantage", "a=127.0.10.1-5"
    )
    # Then it has exactly what a plain scan in the namespace sees, each port once
    assert rc in (0, 1), err
    assert document["complete"] is True
    keys = [(r["host"], r["port"], r["proto"]) for r in document["results"]]
    assert len(keys) == len(set(keys)) == 5 * 11
    assert {r["vantage"] for r in document["results"]} == {"a"}
    _, direct, direct_err = netns.scan(*common, "--no-db", "127.0.10.1-5")
    assert _keyed(document["results"]) == _keyed(direct["results"]), direct_err
    assert sum(1 for v in _keyed(document["results"]).values() if v[0] == "open") > 2
    assert "guest:guest" not in err


def test_a_shard_with_no_worker_expires_on_rabbitmq_too(rabbitmq: str, netns: Netns) -> None:
    # Given RabbitMQ and a listener in the namespace, a probe counter, and no worker
    netns.serve("tcp:127.0.10.1:2323:login: ")
    _count_probes(netns)
    rc, _, err = _scan_in(netns, rabbitmq, *ONE_SHARD, "--shard-timeout", "2")
    assert rc == 2, err
    assert "shard 0 (vantage b): no word from any worker for 2 s" in err, err
    # When a worker for that vantage starts afterwards, it discards the shard unscanned
    worker = _worker(netns, rabbitmq, "b", "--log-level", "INFO")
    log = _Log(worker)
    log.wait_for("Discarding revoked task: ghostport.shard[")
    assert _probes_sent(netns) == 0
    # And it scans a live coordinator's shard
    _a_live_shard_is_scanned(netns, partial(_scan_in, netns, rabbitmq))


def test_an_unreachable_amqp_broker_is_one_clear_line_without_its_password() -> None:
    rc, _, err = _scan(
        "amqp://scanner:hunter2@127.0.0.1:1/prod", "-p", "T:9", "--vantage", "a=127.0.0.1"
    )
    assert rc == 2, err
    assert "hunter2" not in err
    assert "broker amqp://scanner:***@127.0.0.1:1/prod cannot be reached" in err, err
    assert "Traceback" not in err


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM a worker the test started (Celery's warm shutdown: it ends its shard first)."""
    process.terminate()
    process.wait(timeout=60)


ResultSet = set[tuple[str | None, str, str, int, str]]


def _result_set(results: list[Any]) -> tuple[ResultSet, int]:
    """(vantage, host, proto, port, state) of every result, and how many results there are."""
    keys = {
        (r["vantage"], r["host"], r["proto"], r["port"], r["state"])
        if isinstance(r, dict)
        else (r.vantage, r.host, r.proto.value, r.port, r.state.value)
        for r in results
    }
    return keys, len(results)


def _sharded_progress(db: str) -> tuple[str, bool, set[int], int] | None:
    """The recorded scan's id, completeness, finished shards, and how many of its recorded
    results are from shards not finished (with --all-states a shard's results are its
    counts), once the coordinator recorded it."""
    with open_store(db) as store:
        rows = store.scans()
        if not rows:
            return None
        row = rows[-1]
        _, finished = finished_shards(store.checkpoint(row.id).checkpoint)
    of_finished = sum(
        n
        for s in finished.values()
        for states in s.states_by_proto.values()
        for n in states.values()
    )
    return row.id, row.complete, set(finished), row.results - of_finished


def test_a_resumed_distributed_scan_skips_finished_shards_and_has_a_clean_runs_results(
    broker: str, segments: tuple[Netns, Netns], tmp_path: Path
) -> None:
    a, b = segments
    db = f"sqlite:///{tmp_path / 'h.db'}"
    open_store(db).close()  # the schema exists before the coordinator and this test share it
    common = [
        *("-p", "T:1-200", "--all-states", "--seed", "3", "--rate", "100", "--shards", "4"),
        *("--vantage", "a=127.0.10.1-5", "--vantage", "b=127.0.10.1-5", "--shard-timeout", "120"),
    ]
    env = {k: v for k, v in os.environ.items() if k != "GHOSTPORT_BROKER"}
    workers = [_worker(a, broker, "a"), _worker(b, broker, "b")]
    # Given a clean run's results (8 shards of 250 probes, each worker one shard at a time)
    rc, clean, err = _scan(broker, *common)
    assert rc in (0, 1) and clean["complete"], err
    clean_keys, clean_count = _result_set(clean["results"])
    assert clean_count == len(clean_keys) == 2 * 5 * 200
    # When the same scan is recorded, its broker given by $GHOSTPORT_BROKER (so no URL is in
    # the recorded command line), and its coordinator is killed with SIGKILL once some
    # shards finished, before all did, with results of an unfinished shard recorded too
    log = (tmp_path / "coordinator.err").open("w")
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "scanner", "scan", "-q", "--json", "-", "--db", db, *common],
        stdout=log,
        stderr=log,
        text=True,
        cwd=REPO,
        env={**env, "GHOSTPORT_BROKER": broker},
    )
    try:
        deadline = time.monotonic() + 120  # a bound on waiting, not a claim about speed
        while True:
            progress = _sharded_progress(db)
            if progress is not None and progress[2] and progress[3] and not progress[1]:
                break
            assert coordinator.poll() is None, (tmp_path / "coordinator.err").read_text()
            assert time.monotonic() < deadline, progress
            time.sleep(0.1)
        os.kill(coordinator.pid, signal.SIGKILL)
        coordinator.wait(timeout=10)
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait()
        log.close()
    progress = _sharded_progress(db)
    assert progress is not None
    scan_id, complete, finished, partial = progress
    assert not complete and 0 < len(finished) < 8 and partial > 0, progress
    # And the killed coordinator's shards are gone from the broker (its workers end the
    # shard they run; the queued ones are dropped, as if they had expired), so what the
    # workers take from here on is what the resume sends
    for worker in workers:
        _stop(worker)
    client = _redis(broker)
    try:
        client.delete("ghostport.a", "ghostport.b")
    finally:
        client.close()
    # Then a resume without a broker is one clear line naming the flag
    resume = [sys.executable, "-m", "scanner", "resume", scan_id, "--db", db]
    done = subprocess.run(
        resume, capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"ghostport resume {scan_id} --broker URL" in done.stderr, done.stderr
    # When it is resumed with --broker, with fresh workers in both segments
    fresh = [_worker(ns, broker, name, "--log-level", "INFO") for ns, name in ((a, "a"), (b, "b"))]
    logs = [_Log(worker) for worker in fresh]
    done = subprocess.run(
        [*resume, "--broker", broker],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=240,
    )
    # Then the resumed JSON and the history hold exactly the clean run's results, each once
    assert done.returncode in (0, 1), done.stderr
    document = json.loads(done.stdout)
    assert document["complete"] is True
    assert document["scan"]["id"] == scan_id
    assert _result_set(document["results"]) == (clean_keys, clean_count)
    with open_store(db) as store:
        stored = store.document(scan_id)
        row = next(r for r in store.scans() if r.id == scan_id)
    assert row.complete
    assert _result_set(list(stored.results)) == (clean_keys, clean_count)
    assert document["summary"]["states"] == clean["summary"]["states"]
    assert document["summary"]["probes_done"] == document["summary"]["probes_total"] == 2000
    # And the workers ran only the shards that had not finished
    for worker in fresh:
        _stop(worker)
    received = [line for log in logs for line in log.rest() if "ghostport.shard[" in line]
    received = [line for line in received if "received" in line]
    assert len(received) == 8 - len(finished), received
    assert "Traceback" not in done.stderr


def test_a_shard_queued_by_an_interrupted_coordinator_is_dropped_unscanned(
    broker: str, netns: Netns, tmp_path: Path
) -> None:
    # Given a segment with a listener, a counter on every packet sent towards it, and a
    # coordinator whose shard waits in its vantage's queue (no worker there yet)
    netns.serve("tcp:127.0.10.1:2323:login: ")
    _count_probes(netns)
    out = (tmp_path / "scan.out").open("w")
    scan = subprocess.Popen(
        [
            *(sys.executable, "-m", "scanner", "scan", "-q", "--no-db", "--json", "-"),
            *("--broker", broker, *ONE_SHARD),
            *("--shard-timeout", "120"),
        ],
        stdout=out,
        stderr=out,
        text=True,
        cwd=REPO,
    )
    client = _redis(broker)
    try:
        deadline = time.monotonic() + 60  # a bound on waiting, not a claim about speed
        while client.llen("ghostport.b") < 1:
            assert scan.poll() is None, (tmp_path / "scan.out").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # When the coordinator is interrupted (Ctrl-C) long before its shard would expire
        scan.send_signal(signal.SIGINT)
        assert scan.wait(timeout=60) == 130, (tmp_path / "scan.out").read_text()
        # (its revoke reached no worker: the shard is still queued)
        assert client.llen("ghostport.b") == 1
        # And a worker for that vantage starts afterwards
        worker = _worker(netns, broker, "b", "--log-level", "INFO")
        log = _Log(worker)
        # Then it drops the shard without scanning
        log.wait_for("dropped shard 0 (vantage b) of scan", "its coordinator is gone")
        assert client.llen("ghostport.b") == 0
        assert not list(client.scan_iter("ghostport.batches.*"))
        assert not list(client.scan_iter("ghostport.stream-open.*"))
    finally:
        if scan.poll() is None:
            scan.kill()
            scan.wait()
        out.close()
        client.close()
    assert _probes_sent(netns) == 0
    # And the same worker scans a live coordinator's shard (so the counter would have seen it)
    _a_live_shard_is_scanned(netns, partial(_scan, broker))
    assert "Traceback" not in "".join(log.lines)


def _rabbit_depth(ns: Netns, url: str, name: str) -> int:
    """Messages in a RabbitMQ queue (a passive declare from inside the namespace); 0 while
    the queue does not exist."""
    done = ns.run(
        sys.executable,
        "-c",
        "import sys; from kombu import Connection\n"
        "with Connection(sys.argv[1]) as c:\n"
        "    try:\n"
        "        q = c.default_channel.queue_declare(queue=sys.argv[2], passive=True)\n"
        "    except c.channel_errors:\n"
        "        print(0)\n"
        "    else:\n"
        "        print(q.message_count)",
        url,
        name,
    )
    return int(done.stdout)


def test_a_shard_of_an_interrupted_coordinator_is_dropped_on_rabbitmq_too(
    rabbitmq: str, netns: Netns
) -> None:
    # Given RabbitMQ, a listener and a probe counter in the namespace, and a coordinator
    # whose shard waits in its vantage's queue (no worker there yet)
    netns.serve("tcp:127.0.10.1:2323:login: ")
    _count_probes(netns)
    scan = netns.spawn(
        *(sys.executable, "-m", "scanner", "scan", "-q", "--no-db", "--json", "-"),
        *("--broker", rabbitmq, *ONE_SHARD, "--shard-timeout", "120"),
    )
    deadline = time.monotonic() + 60  # a bound on waiting, not a claim about speed
    while _rabbit_depth(netns, rabbitmq, "ghostport.b") < 1:
        assert scan.poll() is None
        assert time.monotonic() < deadline
    # When the coordinator is interrupted (Ctrl-C) long before its shard would expire
    scan.send_signal(signal.SIGINT)
    _, err = scan.communicate(timeout=60)
    assert scan.returncode == 130, err
    assert _rabbit_depth(netns, rabbitmq, "ghostport.b") == 1
    # Then a worker for that vantage started afterwards drops it unscanned
    log = _Log(_worker(netns, rabbitmq, "b", "--log-level", "INFO"))
    log.wait_for("dropped shard 0 (vantage b) of scan", "its coordinator is gone")
    assert _rabbit_depth(netns, rabbitmq, "ghostport.b") == 0
    assert _probes_sent(netns) == 0
    # And it scans a live coordinator's shard
    _a_live_shard_is_scanned(netns, partial(_scan_in, netns, rabbitmq))
    assert "Traceback" not in "".join(log.lines)
