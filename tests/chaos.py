"""`make chaos`: the real stack under faults, killed workers and a killed Redis; then count what got lost.

`python -m tests.chaos [--calls 300] [--workers 4] [--kills 10] [--redis-restarts 1]
[--fault-rate 0.3] [--seed N] [--timeout 900] [--keep-logs DIR]`

Separate processes as in production: redis-server (AOF, fsync always, so a SIGKILLed
Redis restarted on the same directory keeps everything it acknowledged), the webhook
receiver, N Celery workers (each in its own session, so SIGKILL takes the whole
prefork group), one beat, and the Salesforce emulator (in this process) seeded with a
generated org and drawing transient faults at `--fault-rate`. Signed Aircall
`call.ended` webhooks are sent like a provider does: redelivered after a 5xx until a
2xx, some twice on purpose. Workers are SIGKILLed and Redis restarted on a schedule
spread over the run. When every acknowledged call is written or dead and the queue
stays empty, the CRM is compared with what the rules decide on the same data.

Exit status 1 when a call was lost, written twice, linked to the wrong records,
ended as a dead letter, or the run changed CRM records other than our Tasks. It is
not part of `make test`: it takes minutes and measures, it does not gate.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import copy
import dataclasses
import datetime as dt
import importlib
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.emulators.salesforce.bigorg import INTERNAL_DOMAIN, REFERENCE, generate_crm, user_email
from tests.emulators.salesforce.org import RecordData
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import DEFAULT_FAULT_MIX, RATE_KINDS, SalesforceEmulator
from tests.redis_server import free_port
from worker.config.scenario import parse_scenario
from worker.core.model import Decision, Scenario
from worker.dev.devstack import worker_command
from worker.pipeline.association import decide_scenario
from worker.pipeline.store import CallStatus, CallStore

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TENANT = "chaos"
QUEUE = "callmatch"
AIRCALL_TOKEN = "chaos-aircall-token"
PROFILES = {"full": OrgProfile.full, "after_setup": OrgProfile.after_setup}
EXTERNAL_ID_FIELD = "Callmatch_Call_Id__c"  # SalesforceSettings().external_id_field
POLICY: dict[str, Any] = {"crm": "salesforce", "default_region": "FR", "timezone": "Europe/Paris"}
FINAL = (CallStatus.WRITTEN, CallStatus.DEAD)
MAX_DELIVERIES = 40
MIN_STEP_GAP_SECONDS = 1.0  # between two chaos steps, so each one lands on a running system
BOOT_SECONDS = 4.0  # a worker younger than this is spared when another can be killed
STACK_ENV = {
    "CALLMATCH_SWEEP_INTERVAL_SECONDS": "2",
    "CALLMATCH_STALL_SECONDS": "20",
    "CALLMATCH_HARD_TIME_LIMIT_SECONDS": "15",
    "CALLMATCH_RETRY_BASE_SECONDS": "0.2",
    "CALLMATCH_RETRY_MAX_SECONDS": "2",
    "CALLMATCH_MAX_RETRY_COUNTDOWN_SECONDS": "5",
    "CALLMATCH_VISIBILITY_TIMEOUT_SECONDS": "30",
    "CALLMATCH_UNACKED_RESTORE_INTERVAL_SECONDS": "2",
    "CALLMATCH_MAX_RETRIES": "20",
    "CALLMATCH_REFRESH_INTERVAL_SECONDS": "3600",
}


@dataclasses.dataclass(frozen=True)
class Options:
    """The command line's choices; the defaults are those of `make chaos`."""

    calls: int = 300
    workers: int = 4
    concurrency: int = 1
    kills: int = 10
    redis_restarts: int = 1
    fault_rate: float = 0.3
    fault_mix: tuple[tuple[str, float], ...] = ()
    seed: int = 1
    timeout: float = 900.0
    keep_logs: Path | None = None
    duplicates: float = 0.1
    senders: int = 8
    send_rate: float = 20.0
    window: float | None = None
    quiet: float = 3.0
    env: tuple[tuple[str, str], ...] = ()
    code: Path = ROOT
    profile: str = "full"

    @property
    def chaos_window(self) -> float:
        """Seconds by which every kill and restart has happened, even if the calls stall."""
        return self.window if self.window is not None else max(30.0, self.calls * 0.3)


# --- processes ----------------------------------------------------------------------------------


class Proc:
    """One child process in its own session (SIGKILL reaches its whole group), logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path, cwd: Path = ROOT):
        self.name = name
        self.cwd = cwd
        self.argv = argv
        self.env = env
        self.log_dir = log_dir
        self.generation = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self.started = 0.0

    def start(self) -> None:
        self.generation += 1
        self.started = time.monotonic()
        log = self.log_dir / f"{self.name}-{self.generation}.log"
        self.logs.append(log)
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the process group: no shutdown handler runs, as in an OOM kill or a lost host."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, grace: float = 15.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
        except ProcessLookupError:
            pass


def _pong(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _wait(what: str, ready: Callable[[], bool], timeout: float, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc is not None and not proc.alive():
            raise SystemExit(f"chaos: {what} exited; see {proc.logs[-1]}")
        time.sleep(0.1)
    raise SystemExit(f"chaos: {what} not ready within {timeout:.0f}s")


class RedisProcess(Proc):
    """redis-server that keeps every acknowledged write across a SIGKILL (AOF, fsync always)."""

    def __init__(self, port: int, data_dir: Path, log_dir: Path, env: dict[str, str]):
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("chaos: redis-server is not installed (make install)")
        argv = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
        ]
        super().__init__("redis", argv, env, log_dir)
        self.port = port

    def start_and_wait(self) -> None:
        self.start()
        _wait("redis-server", lambda: _pong(self.port), 30, self)


# --- calls ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlannedCall:
    """One call to send: an Aircall call with one generated contact as the other party."""

    number: int
    contact_id: str
    email: str | None
    phone: str | None
    started: dt.datetime
    duration: int

    @property
    def call_id(self) -> str:
        return f"aircall:{self.number}"

    def webhook(self) -> dict[str, Any]:
        started = int(self.started.timestamp())
        emails = [{"label": "Work", "value": self.email}] if self.email else []
        data: dict[str, Any] = {
            "id": self.number,
            "direction": "outbound",
            "status": "done",
            "started_at": started,
            "answered_at": started + 5,
            "ended_at": started + self.duration,
            "duration": self.duration,
            "user": {"id": 456, "name": "Rep One", "email": user_email(1)},
            "contact": {"id": 10_000 + self.number, "emails": emails, "phone_numbers": []},
        }
        if self.phone:
            data["raw_digits"] = self.phone
        return {
            "resource": "call",
            "event": "call.ended",
            "timestamp": started + self.duration + 60,
            "token": AIRCALL_TOKEN,
            "data": data,
        }

    def scenario_call(self) -> dict[str, Any]:
        """The same call as scenario-v1 `call`: what the worker's event turns into."""
        return {
            "id": self.call_id,
            "kind": "call",
            "direction": "outbound",
            "started_at": _iso(self.started),
            "ended_at": _iso(self.started + dt.timedelta(seconds=self.duration)),
            "organizer": {"email": user_email(1), "name": "Rep One"},
            "participants": [{"email": self.email, "phone": self.phone}],
        }


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def plan_calls(crm: dict[str, Any], count: int, rng: random.Random) -> list[PlannedCall]:
    """Distinct call ids, each with one contact's email and/or phone, a few minutes apart."""
    reachable = [c for c in crm["contacts"] if c["email"] or c["phones"]]
    calls = []
    for index in range(count):
        contact = rng.choice(reachable)
        email, phone = contact["email"], (contact["phones"] or [None])[0]
        shape = rng.random()
        if email and phone:
            if shape < 0.25:
                phone = None
            elif shape < 0.4:
                email = None
        calls.append(
            PlannedCall(
                number=1001 + index,
                contact_id=contact["id"],
                email=email,
                phone=phone,
                started=REFERENCE + dt.timedelta(minutes=7 * index),
                duration=rng.randint(30, 1800),
            )
        )
    return calls


class Sender:
    """Delivers webhooks as a provider does: a 5xx or no answer is redelivered later, a 2xx ends it."""

    def __init__(self, url: str, threads: int):
        self.url = url
        self.client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=threads * 2))
        self.lock = threading.Lock()
        self.acknowledged: set[str] = set()
        self.counts: collections.Counter[str] = collections.Counter()
        self.refused: dict[str, str] = {}

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def deliver(self, call: PlannedCall) -> None:
        document = call.webhook()
        for _ in range(MAX_DELIVERIES):
            self.count("deliveries")
            try:
                response = self.client.post(self.url, json=document)
            except httpx.HTTPError as exc:
                self.count(f"no answer ({type(exc).__name__})")
                time.sleep(1.0)
                continue
            if 200 <= response.status_code < 300:
                body = response.json()
                with self.lock:
                    self.acknowledged.add(call.call_id)
                    self.counts["2xx"] += 1
                    if call.call_id in body.get("duplicates", []):
                        self.counts["2xx duplicate"] += 1
                return
            if response.status_code >= 500 or response.status_code == 429:
                self.count(f"{response.status_code}")
                try:
                    wait = float(response.headers.get("Retry-After", "1"))
                except ValueError:
                    wait = 1.0
                time.sleep(min(max(wait, 0.2), 5.0))
                continue
            with self.lock:
                self.counts[f"{response.status_code}"] += 1
                self.refused[call.call_id] = f"{response.status_code} {response.text[:200]}"
            return
        with self.lock:
            self.counts["gave up"] += 1

    def close(self) -> None:
        self.client.close()


# --- progress -------------------------------------------------------------------------------------


class Progress:
    """A rich status line when rich is installed, else a plain line every few seconds."""

    def __init__(self) -> None:
        self.last = 0.0
        self.live: Any = None
        if importlib.util.find_spec("rich") is not None:
            console = importlib.import_module("rich.console").Console()
            self.live = importlib.import_module("rich.live").Live("", console=console, refresh_per_second=2)
            self.live.start()

    def show(self, text: str) -> None:
        if self.live is not None:
            self.live.update(text)
            return
        now = time.monotonic()
        if now - self.last >= 5:
            self.last = now
            print(text, flush=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


# --- the run --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Report:
    """What the run measured; call ids where a count would hide which calls to look at."""

    sent: int = 0
    acknowledged: int = 0
    written: int = 0
    lost: list[str] = dataclasses.field(default_factory=list)
    duplicated: dict[str, int] = dataclasses.field(default_factory=dict)
    dead: list[str] = dataclasses.field(default_factory=list)
    wrong: list[str] = dataclasses.field(default_factory=list)
    crm_changes: list[str] = dataclasses.field(default_factory=list)
    unfinished: list[str] = dataclasses.field(default_factory=list)
    kills: int = 0
    redis_restarts: int = 0
    seconds: float = 0.0
    cases: dict[str, int] = dataclasses.field(default_factory=dict)

    def failed(self) -> bool:
        return bool(self.lost or self.duplicated or self.wrong or self.dead or self.crm_changes)


def _tenants_yaml(emulator: SalesforceEmulator) -> str:
    return f"""version: 1
tenants:
  {TENANT}:
    crm:
      kind: salesforce
      instance_url: {emulator.instance_url}
      ca_file: {emulator.ca_file}
      read_timeout: 10
      login_url: {emulator.instance_url}
      credentials:
        access_token_env: CHAOS_SF_ACCESS_TOKEN
        client_id_env: CHAOS_SF_CLIENT_ID
        client_secret_env: CHAOS_SF_CLIENT_SECRET
        refresh_token_env: CHAOS_SF_REFRESH_TOKEN
      rate_limit:
        per_second: 500
        burst: 200
    policy: {json.dumps(POLICY)}
    internal_domains: [{INTERNAL_DOMAIN}]
    providers:
      aircall:
        webhook_secret_env: CHAOS_AIRCALL_TOKEN
"""


def _snapshot(emulator: SalesforceEmulator) -> dict[str, dict[str, RecordData]]:
    """Every record but our activities, to prove the run changed nothing else."""
    with emulator.org.lock:
        return {
            name: copy.deepcopy(rows)
            for name, rows in emulator.org.records.items()
            if name not in ("Task", "TaskRelation")
        }


def expected_decision(base: Scenario, call: PlannedCall) -> Decision:
    """What the rules decide for this call on the seeded org, as `callmatch decide` would."""
    parsed = parse_scenario({"version": 1, "policy": POLICY, "call": call.scenario_call()})
    return decide_scenario(dataclasses.replace(parsed, crm=base.crm))


class Chaos:
    """One run: the stack, the calls, the chaos schedule, the wait for quiet, the verdict."""

    def __init__(self, options: Options):
        self.options = options
        self.rng = random.Random(options.seed)
        self.work = Path(tempfile.mkdtemp(prefix="callmatch-chaos-"))
        self.log_dir = options.keep_logs or self.work / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.work / "redis").mkdir()
        self.crm = generate_crm(options.seed)
        self.base = parse_scenario(
            {"call": {"id": "seed", "started_at": "2026-01-01T00:00:00Z"}, "crm": self.crm}
        )
        self.emulator = SalesforceEmulator(
            seed_org(self.base.crm, profile=PROFILES[options.profile]()), daily_limit=10_000_000
        )
        self.redis_port = free_port()
        self.api_port = free_port()
        self.workers: list[Proc] = []
        self.others: list[Proc] = []
        self.redis_proc: RedisProcess | None = None
        self.kills = 0
        self.restarts = 0
        self.finished = 0.0  # share of the calls written or dead, as last seen
        self.chaos_log: list[str] = []
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        """Print a step of the run, and keep it with wall-clock time in chaos.log beside the others."""
        line = f"[{time.monotonic() - self.started:7.1f}s] {text}"
        self.chaos_log.append(line)
        print(line, flush=True)
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with (self.log_dir / "chaos.log").open("a") as log:
            log.write(f"{stamp} {text}\n")

    # --- stack ---

    def env(self) -> dict[str, str]:
        url = f"redis://127.0.0.1:{self.redis_port}/0"
        return {
            **os.environ,
            **STACK_ENV,
            **dict(self.options.env),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(self.options.code),
            "CALLMATCH_REDIS_URL": url,
            "CALLMATCH_TENANTS": str(self.work / "tenants.yaml"),
            "CALLMATCH_PORT": str(self.api_port),
            "CALLMATCH_WORKER_METRICS_PORT": "0",
            "CHAOS_SF_ACCESS_TOKEN": self.emulator.issue_token(),
            "CHAOS_SF_CLIENT_ID": self.emulator.client_id,
            "CHAOS_SF_CLIENT_SECRET": self.emulator.client_secret,
            "CHAOS_SF_REFRESH_TOKEN": self.emulator.refresh_token,
            "CHAOS_AIRCALL_TOKEN": AIRCALL_TOKEN,
        }

    def start_stack(self) -> None:
        self.emulator.start()
        self.emulator.fault_rate = self.options.fault_rate
        if self.options.fault_mix:
            self.emulator.fault_mix = dict(self.options.fault_mix)
        self.emulator.seed_faults(self.options.seed)
        (self.work / "tenants.yaml").write_text(_tenants_yaml(self.emulator))
        env = self.env()
        self.redis_proc = RedisProcess(self.redis_port, self.work / "redis", self.log_dir, env)
        self.redis_proc.start_and_wait()
        code = self.options.code
        receiver = Proc(
            "receiver", [str(BIN / "python"), "-m", "worker.ingest.server"], env, self.log_dir, code
        )
        beat = Proc(
            "beat",
            [str(BIN / "celery"), "-A", "worker.pipeline.tasks:app", "beat", "--loglevel", "INFO"],
            env,
            self.log_dir,
            code,
        )
        self.others = [receiver, beat]
        for proc in self.others:
            proc.start()
        for index in range(self.options.workers):
            argv = [*worker_command(BIN, self.options.concurrency), "-n", f"chaos{index}@%h"]
            worker = Proc(f"worker{index}", argv, env, self.log_dir, code)
            worker.start()
            self.workers.append(worker)

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{self.api_port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _wait("the receiver", ready, 60, receiver)

    def stop_stack(self) -> None:
        for proc in [*self.workers, *reversed(self.others)]:
            proc.stop()
        if self.redis_proc is not None:
            self.redis_proc.stop()
        self.emulator.stop()

    # --- chaos ---

    def kill_worker(self) -> None:
        """A random worker that has been up a while (so it is likely mid-task, not still booting)."""
        booted = [w for w in self.workers if time.monotonic() - w.started >= BOOT_SECONDS]
        worker = self.rng.choice(booted or self.workers)
        pid = worker.pid
        worker.kill()
        worker.start()
        self.kills += 1
        self.say(f"SIGKILLed {worker.name} (pid group {pid}); replacement pid {worker.pid}")

    def restart_redis(self) -> None:
        assert self.redis_proc is not None
        self.redis_proc.kill()
        down = self.rng.uniform(1.0, 2.0)
        self.say(f"SIGKILLed redis-server; restarting in {down:.1f}s")
        time.sleep(down)
        self.redis_proc.start_and_wait()
        self.restarts += 1
        self.say("redis-server back (same port and AOF directory)")

    def chaos_schedule(self) -> list[tuple[float, str]]:
        """(point, kind): each step happens once that share of the calls is finished, or of the window
        has passed, whichever comes first; so the chaos lands while calls are in flight."""
        events = [(self.rng.uniform(0.02, 0.9), "kill") for _ in range(self.options.kills)]
        events += [(self.rng.uniform(0.1, 0.8), "redis") for _ in range(self.options.redis_restarts)]
        return sorted(events)

    def run_chaos(self, events: list[tuple[float, str]], begin: float, stop: threading.Event) -> None:
        window = self.options.chaos_window
        last = 0.0
        for point, kind in events:
            while (
                max(self.finished, (time.monotonic() - begin) / window) < point
                or time.monotonic() - last < MIN_STEP_GAP_SECONDS
            ):
                if stop.wait(0.2):
                    return
            last = time.monotonic()
            try:
                self.kill_worker() if kind == "kill" else self.restart_redis()
            except Exception as exc:  # keep the run going; the report says what happened
                self.say(f"chaos step {kind} failed: {type(exc).__name__}: {exc}")

    # --- sending ---

    def send(self, calls: list[PlannedCall], sender: Sender) -> None:
        share = self.options.duplicates
        twins = [c for c in calls if self.rng.random() < share]
        together = {c.call_id for c in twins[::2]}
        later = [c for c in twins if c.call_id not in together]
        pace = 1.0 / self.options.send_rate if self.options.send_rate > 0 else 0.0
        with concurrent.futures.ThreadPoolExecutor(self.options.senders, thread_name_prefix="send") as pool:
            futures = []
            for call in calls:
                futures.append(pool.submit(sender.deliver, call))
                if call.call_id in together:
                    futures.append(pool.submit(sender.deliver, call))
                time.sleep(pace)
            for future in futures:
                future.result()
            for future in [pool.submit(sender.deliver, call) for call in later]:
                future.result()
        self.say(
            f"sent {len(calls)} calls ({len(together)} redelivered concurrently, {len(later)} later): "
            f"{dict(sender.counts)}"
        )

    # --- waiting ---

    def statuses(self, client: redis.Redis, call_ids: Sequence[str]) -> dict[str, CallStatus | None]:
        store = CallStore(client)
        out: dict[str, CallStatus | None] = {}
        for call_id in call_ids:
            record = store.get(TENANT, call_id)
            out[call_id] = None if record is None else record.status
        return out

    def progress_line(self, statuses: dict[str, CallStatus | None], depth: int | str) -> str:
        counts = collections.Counter(s.value if s else "missing" for s in statuses.values())
        self.finished = sum(1 for s in statuses.values() if s in FINAL) / max(1, self.options.calls)
        faults = sum(self.emulator.stats.faults.values())
        return (
            f"[{time.monotonic() - self.started:7.1f}s] acknowledged {len(statuses)}  "
            + "  ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            + f"  queue {depth}  kills {self.kills}  redis restarts {self.restarts}  faults {faults}"
        )

    def wait_quiet(self, acknowledged: Callable[[], list[str]], deadline: float, progress: Progress) -> bool:
        """Every acknowledged call written or dead, and the queue empty for `quiet` seconds in a row."""
        client = redis.Redis(port=self.redis_port, decode_responses=True, socket_timeout=5)
        calm_since: float | None = None
        while time.monotonic() < deadline:
            try:
                statuses = self.statuses(client, acknowledged())
                depth = int(client.llen(QUEUE))
            except redis.RedisError as exc:
                progress.show(
                    f"[{time.monotonic() - self.started:7.1f}s] redis unavailable ({type(exc).__name__})"
                )
                calm_since = None
                time.sleep(1)
                continue
            progress.show(self.progress_line(statuses, depth))
            settled = all(s in FINAL for s in statuses.values()) and depth == 0
            if not settled:
                calm_since = None
            elif calm_since is None:
                calm_since = time.monotonic()
            elif time.monotonic() - calm_since >= self.options.quiet:
                return True
            time.sleep(0.5)
        return False

    def run(self) -> Report:
        options = self.options
        report = Report()
        calls = plan_calls(self.crm, options.calls, self.rng)
        before = _snapshot(self.emulator)
        print(
            f"chaos: {options.calls} calls, {options.workers} workers (-c {options.concurrency}), "
            f"{options.kills} kills, {options.redis_restarts} redis restarts, fault rate {options.fault_rate}"
            f" {dict(options.fault_mix) or 'default mix'}, "
            f"seed {options.seed}{f', env {dict(options.env)}' if options.env else ''}"
            f"{f', code from {options.code}' if options.code != ROOT else ''}; "
            f"org {len(self.crm['accounts'])} accounts, {len(self.crm['contacts'])} "
            f"contacts, {len(self.crm['opportunities'])} opportunities; logs in {self.log_dir}",
            flush=True,
        )
        self.start_stack()
        sender = Sender(f"http://127.0.0.1:{self.api_port}/webhooks/{TENANT}/aircall", options.senders)
        stop = threading.Event()
        events = self.chaos_schedule()
        begin = time.monotonic()
        if events:
            self.say(
                f"chaos at these shares of calls finished (or of {options.chaos_window:.0f}s): "
                + ", ".join(f"{kind}@{point:.0%}" for point, kind in events)
            )
        chaos = threading.Thread(target=self.run_chaos, args=(events, begin, stop), name="chaos", daemon=True)
        chaos.start()
        progress = Progress()
        deadline = self.started + options.timeout
        quiet = False
        client = redis.Redis(port=self.redis_port, decode_responses=True, socket_timeout=2)
        try:
            sending = threading.Thread(target=self.send, args=(calls, sender), name="sender", daemon=True)
            sending.start()
            while sending.is_alive() or chaos.is_alive():
                if time.monotonic() > deadline:
                    break
                try:
                    with sender.lock:
                        acked = sorted(sender.acknowledged)
                    progress.show(self.progress_line(self.statuses(client, acked), int(client.llen(QUEUE))))
                except redis.RedisError:
                    progress.show(f"[{time.monotonic() - self.started:7.1f}s] redis unavailable")
                time.sleep(0.5)
            sending.join(timeout=max(0.0, deadline - time.monotonic()))
            stop.set()
            chaos.join(timeout=60)

            def acknowledged() -> list[str]:
                with sender.lock:
                    return sorted(sender.acknowledged)

            quiet = self.wait_quiet(acknowledged, deadline, progress)
        finally:
            stop.set()
            progress.close()
            sender.close()
        report.seconds = time.monotonic() - self.started
        if not quiet:
            self.say(f"not quiet within --timeout {options.timeout:.0f}s: reporting what is there")
        report.sent = len(calls)
        report.acknowledged = len(sender.acknowledged)
        report.kills, report.redis_restarts = self.kills, self.restarts
        self.judge(report, calls, sender, before)
        self.print_report(report, sender, quiet)
        return report

    # --- judging ---

    def tasks_by_call(self) -> tuple[dict[str, list[RecordData]], dict[str, set[str]]]:
        org = self.emulator.org
        with org.lock:
            tasks: dict[str, list[RecordData]] = collections.defaultdict(list)
            for row in org.records["Task"].values():
                if not row["IsDeleted"] and row.get(EXTERNAL_ID_FIELD):
                    tasks[str(row[EXTERNAL_ID_FIELD])].append(dict(row))
            relations: dict[str, set[str]] = collections.defaultdict(set)
            for row in org.records.get("TaskRelation", {}).values():
                if not row["IsDeleted"] and not row["IsWhat"]:
                    relations[str(row["TaskId"])].add(str(row["RelationId"]))
        return tasks, relations

    def judge(
        self,
        report: Report,
        calls: list[PlannedCall],
        sender: Sender,
        before: dict[str, dict[str, RecordData]],
    ) -> None:
        tasks, relations = self.tasks_by_call()
        client = redis.Redis(port=self.redis_port, decode_responses=True, socket_timeout=10)
        store = CallStore(client)
        dead = {letter.call_id: letter for letter in store.dead_letters(TENANT, limit=100_000)}
        report.dead = sorted(dead)
        by_id = {c.call_id: c for c in calls}
        report.written = sum(1 for call_id in tasks if call_id in by_id)
        report.duplicated = {call_id: len(rows) for call_id, rows in tasks.items() if len(rows) > 1}
        for call_id in sorted(sender.acknowledged):
            record = store.get(TENANT, call_id)
            if record is None or record.status not in FINAL:
                report.unfinished.append(call_id)
            if call_id not in tasks and call_id not in dead:
                report.lost.append(call_id)
        for call_id, rows in sorted(tasks.items()):
            call = by_id.get(call_id)
            if call is None:
                report.wrong.append(f"{call_id}: a Task for a call that was never sent")
                continue
            decision = expected_decision(self.base, call)
            report.cases[decision.case.value] = report.cases.get(decision.case.value, 0) + 1
            if self.options.profile != "full":
                # The scenario's decision reads optional fields a plain org does not have:
                # links are judged on the full org; here W1 (one Task per call) and loss are.
                continue
            who: str | None = None
            what = decision.opportunity_id or decision.account_id
            others: set[str] = set()
            if decision.contact_ids:
                who, others = decision.contact_ids[0], set(decision.contact_ids[1:])
            elif decision.lead_ids:
                who, what = decision.lead_ids[0], None
            for row in rows:
                got_others = relations.get(str(row["Id"]), set()) - {row["WhoId"]}
                if (row["WhoId"], row["WhatId"], got_others) != (who, what, others):
                    report.wrong.append(
                        f"{call_id}: Task {row['Id']} WhoId={row['WhoId']} WhatId={row['WhatId']} "
                        f"others={sorted(got_others)}; rules say WhoId={who} WhatId={what} others={sorted(others)} "
                        f"({decision.case.value})"
                    )
        after = _snapshot(self.emulator)
        for name in sorted(set(before) | set(after)):
            old, new = before.get(name, {}), after.get(name, {})
            for record_id in sorted(set(old) | set(new)):
                if old.get(record_id) != new.get(record_id):
                    state = (
                        "added" if record_id not in old else "removed" if record_id not in new else "changed"
                    )
                    report.crm_changes.append(f"{name} {record_id} {state}")

    def call_story(self, call_id: str, limit: int = 8) -> list[str]:
        """The last log lines that name this call, from every process, in time order."""
        pattern = re.compile(re.escape(call_id) + r"\b")
        lines: list[tuple[str, str]] = []
        for log in sorted(self.log_dir.glob("*.log")):
            try:
                text = log.read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if pattern.search(line):
                    lines.append(_story_line(log.stem, line))
        return [f"      {line}" for _, line in sorted(lines)[-limit:]]

    def print_report(self, report: Report, sender: Sender, quiet: bool) -> None:
        stats = self.emulator.stats
        logs = {name: 0 for name in ("stage will retry", "stalled call woken", "dead letter", "Traceback")}
        # (Tracebacks include Celery's own noise while Redis is away, e.g. "Error on restarting Gossip".)
        for log in self.log_dir.glob("*.log"):
            text = log.read_text(errors="replace")
            for name in logs:
                logs[name] += text.count(name)
        print()
        print("chaos report")
        print(
            f"  sent            {report.sent} calls, {sender.counts['deliveries']} deliveries {dict(sender.counts)}"
        )
        print(f"  acknowledged    {report.acknowledged}")
        print(f"  written         {report.written} (calls with a Task; rules' cases {report.cases})")
        print(f"  lost            {len(report.lost)}  (acknowledged, no Task, no dead letter)")
        print(f"  duplicated      {len(report.duplicated)}  (calls with more than one Task)")
        print(f"  dead letters    {len(report.dead)}")
        if self.options.profile == "full":
            print(f"  wrong           {len(report.wrong)}  (Task links differ from the rules' decision)")
        else:
            print(f"  wrong           not judged on the {self.options.profile} org (see --profile)")
        print(f"  crm changes     {len(report.crm_changes)}  (records other than our Tasks)")
        print(f"  unfinished      {len(report.unfinished)}  (acknowledged, not written or dead at the end)")
        print(f"  kills           {report.kills} of {self.options.kills} worker SIGKILLs")
        print(f"  redis restarts  {report.redis_restarts} of {self.options.redis_restarts}")
        print(f"  duration        {report.seconds:.0f}s{'' if quiet else ' (timed out before quiet)'}")
        print(
            f"  emulator        {stats.requests} requests, {stats.api_calls} API calls {stats.by_path}, "
            f"{stats.logins} token grants, faults {dict(sorted(stats.faults.items()))}"
        )
        print(f"  worker logs     {logs}")
        client = redis.Redis(port=self.redis_port, decode_responses=True, socket_timeout=10)
        store = CallStore(client)
        for title, items in (
            ("lost", report.lost),
            ("dead letters", report.dead),
            ("duplicated", sorted(report.duplicated)),
        ):
            for call_id in items[:10]:
                record = store.get(TENANT, call_id)
                state = (
                    "no record"
                    if record is None
                    else f"status={record.status.value} attempts={record.attempts} error={record.error}"
                )
                print(f"  {title}: {call_id}: {state}")
                for line in self.call_story(call_id):
                    print(line)
        for line in report.wrong[:10]:
            print(f"  wrong: {line}")
        for line in report.crm_changes[:10]:
            print(f"  crm change: {line}")
        for call_id, why in list(sender.refused.items())[:5]:
            print(f"  refused delivery: {call_id}: {why}")
        print(f"  logs            {self.log_dir}")
        (self.log_dir / "chaos.json").write_text(
            json.dumps(
                {
                    "options": {k: str(v) for k, v in dataclasses.asdict(self.options).items()},
                    "report": dataclasses.asdict(report),
                    "deliveries": dict(sender.counts),
                    "emulator": dataclasses.asdict(stats),
                    "chaos": self.chaos_log,
                },
                indent=2,
            )
        )

    def cleanup(self) -> None:
        """Stop everything; keep only the logs (the Redis data is gone with the stack)."""
        self.stop_stack()
        if self.options.keep_logs is not None:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            shutil.rmtree(self.work / "redis", ignore_errors=True)


def _story_line(process: str, line: str) -> tuple[str, str]:
    """(time, text) of one log line: a JSON log as time, process, message and the error's last line."""
    try:
        entry = json.loads(line)
    except ValueError:
        return "", f"{process}: {line.strip()[:200]}"
    if not isinstance(entry, dict):
        return "", f"{process}: {line.strip()[:200]}"
    when = str(entry.get("time", ""))
    error = str(entry.get("error") or "").strip().splitlines()
    text = f"{when[11:23]} {process}: {str(entry.get('message', ''))[:160]}"
    if entry.get("stage"):
        text += f" [stage {entry['stage']}]"
    if entry.get("reason"):
        text += f" ({str(entry['reason'])[:120]})"
    if error:
        text += f" <- {error[-1][:160]}"
    return when, text


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=1, help="prefork children per worker")
    parser.add_argument("--kills", type=int, default=10, help="worker SIGKILLs (each replaced)")
    parser.add_argument("--redis-restarts", type=int, default=1)
    parser.add_argument("--fault-rate", type=float, default=0.3, help="share of Salesforce requests faulted")
    parser.add_argument(
        "--fault-mix",
        default="",
        metavar="KIND=WEIGHT,...",
        help=f"weights of the fault kinds (default {','.join(f'{k}={w:g}' for k, w in DEFAULT_FAULT_MIX.items())};"
        f" also: {', '.join(k for k in RATE_KINDS if k not in DEFAULT_FAULT_MIX)})",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override the stack's environment, e.g. CALLMATCH_SWEEP_INTERVAL_SECONDS=100000",
    )
    parser.add_argument(
        "--code",
        type=Path,
        default=ROOT,
        metavar="DIR",
        help="run receiver, workers and beat from this source tree (e.g. `git archive` of another commit)",
    )
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole run")
    parser.add_argument("--keep-logs", type=Path, default=None, metavar="DIR", help="write the logs here")
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of calls delivered twice")
    parser.add_argument("--senders", type=int, default=8, help="concurrent webhook deliveries")
    parser.add_argument("--send-rate", type=float, default=20.0, help="new calls per second; 0: at once")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="full",
        help="the org: full (every feature; links judged) or after_setup (the plainest org after "
        "`callmatch setup`; W1 and loss judged, links not)",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=None,
        help="seconds by which all chaos has happened (default calls*0.3)",
    )
    args = parser.parse_args(argv)
    if args.keep_logs is not None and args.keep_logs.is_dir() and any(args.keep_logs.iterdir()):
        parser.error(f"--keep-logs: {args.keep_logs} is not empty (a run's logs would mix with others)")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    mix: list[tuple[str, float]] = []
    for item in filter(None, (part.strip() for part in args.fault_mix.split(","))):
        kind, _, weight = item.partition("=")
        if kind not in RATE_KINDS:
            parser.error(f"--fault-mix: unknown kind {kind!r} (known: {', '.join(RATE_KINDS)})")
        try:
            mix.append((kind, float(weight or "1")))
        except ValueError:
            parser.error(f"--fault-mix: {item!r} is not KIND=WEIGHT")
    env = []
    for item in args.env:
        name, equals, value = item.partition("=")
        if not equals or not name:
            parser.error(f"--env: {item!r} is not NAME=VALUE")
        env.append((name, value))
    return Options(
        env=tuple(env),
        code=args.code.resolve(),
        profile=args.profile,
        calls=args.calls,
        workers=args.workers,
        concurrency=args.concurrency,
        kills=args.kills,
        redis_restarts=args.redis_restarts,
        fault_rate=args.fault_rate,
        fault_mix=tuple(mix),
        seed=seed,
        timeout=args.timeout,
        keep_logs=args.keep_logs.resolve() if args.keep_logs else None,
        duplicates=args.duplicates,
        senders=args.senders,
        send_rate=args.send_rate,
        window=args.window,
    )


def main(argv: Sequence[str] | None = None) -> int:
    chaos = Chaos(parse_args(argv))
    try:
        report = chaos.run()
    except KeyboardInterrupt:
        print("\nchaos: interrupted; stopping the stack", flush=True)
        return 130
    finally:
        chaos.cleanup()
    return 1 if report.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
