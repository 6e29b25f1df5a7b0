"""Fault injection (issue 17): Berth converges after the agent, the web server, Redis or a
container's monitor is killed with SIGKILL in the middle of work.

A few client threads send 100 mixed operations (create, start, stop, remove, exec) through the
REST API. While they run, the test kills in turn the agent's whole process group, the web
server, Redis (its own, with the append-only file of the default set-up) and the shim of a
running container, then starts each again. After each fault the clients pause, and within two
reconcile intervals every container row must match the host (state by state, counted through
the runtime's own list), no operation may be left pending or running, and no container may be
made twice. At the end every container is removed through the API, and no veth, nft rule,
mount, cgroup, netns, state file or process of the test's prefix may be left; the audit chain
must still verify.
"""

import collections
import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from agent import reconcile

from containers.models import Container
from runtime.errors import NotFound
from tests.e2e import test_agent_logic as logic
from tests.e2e.conftest import PrivateRedis, Stack, _random, free_port
from tests.e2e.leaks import kernel_objects
from tests.runtime.reboot_sim import kill_monitor

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.faults]

LABEL = "io.berth.container"
RECONCILE_SECONDS = 2
TOTAL_OPERATIONS = 100
CLIENTS = 3
# The operation count at which each fault is injected (the clients keep working meanwhile).
FAULTS = (("agent", 15), ("web", 35), ("redis", 55), ("shim", 75))
# Slack for a reconcile pass in the middle of the whole suite on this 2-core machine: 6 s was
# short in two full runs on 2026-12-05 (after the shim fault; the test alone passes in 0 s).
PASS_SLACK_SECONDS = 16
# The runtime's words for a container's status, as rows spell them (agent/observe.py).
STATUS = {
    "created": "created",
    "running": "running",
    "restarting": "running",
    "paused": "paused",
    "stopped": "stopped",
    "exited": "stopped",
}
DONE = ("succeeded", "failed")


class FaultStack(Stack):
    """A stack whose agent runs in a process group of its own, so a crash can take all of it."""

    def start_worker(self, concurrency: int = 2):
        log_path = self.logs / "agent.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        env = dict(self.env, BERTH_AGENT_CONCURRENCY=str(concurrency))
        with open(log_path, "ab") as log:
            self.worker = subprocess.Popen(
                [str(Path(__file__).resolve().parents[2] / "scripts" / "berth-agent")],
                cwd=Path(__file__).resolve().parents[2],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready():
            if self.worker.poll() is not None:
                pytest.fail(f"agent exited:\n{log_path.read_text()[-3000:]}")
            lines = log_path.read_text()[offset:].splitlines()
            return any(" ready." in line and "long@" not in line for line in lines)

        self.wait_until(ready, 60, "the agent to be ready")

    def kill_worker(self, sig=signal.SIGKILL):
        """SIGKILL the agent's process group: both lanes, their pools and fork servers."""
        if self.worker is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.worker.pid, sig)
            self.worker.wait(30)
        self.worker = None

    def kill_web(self):
        self.web.kill()
        self.web.wait(10)
        self.web = None


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """Web, agent (2 s reconcile interval) and a Redis of their own with its append-only file."""
    if os.geteuid() != 0:
        pytest.skip("end-to-end tests run as root")
    redis = PrivateRedis(tmp_path_factory.mktemp("faults-redis"))
    redis.start({"appendonly": "yes"})
    base = Path(f"/tmp/berth-e2e-{_random(8)}")
    base.mkdir(mode=0o755)
    stack = FaultStack(base, redis.url)
    stack.redis = redis
    stack.env.update(BERTH_RECONCILE_SECONDS=str(RECONCILE_SECONDS), BERTH_HEARTBEAT_SECONDS="1")
    try:
        stack.setup()
        stack.start_worker()
        stack.start_web()
        yield stack
    finally:
        stack.teardown()
        redis.stop()


# -- the clients ---------------------------------------------------------------------------


class Workload:
    """Shared by the client threads: the operation budget, the pause gate, what went wrong."""

    def __init__(self, stack):
        self.stack = stack
        self.lock = threading.Lock()
        self.sent = 0
        self.running = threading.Event()
        self.running.set()
        self.parked = 0
        self.stuck: list[str] = []
        self.answers = collections.Counter()
        self.clients: list[Client] = []

    def take(self) -> bool:
        """One more operation of the budget, after any pause; False when the budget is spent."""
        with self.lock:
            self.parked += 1
        self.running.wait()
        with self.lock:
            self.parked -= 1
            if self.sent >= TOTAL_OPERATIONS:
                return False
            self.sent += 1
            return True

    def pause(self):
        """Stop handing out operations and wait until every client finished its current one."""
        self.running.clear()
        alive = lambda: [c for c in self.clients if c.is_alive()]  # noqa: E731
        self.stack.wait_until(lambda: self.parked >= len(alive()), 120, "the clients to pause")

    def resume(self):
        self.running.set()


class Client(threading.Thread):
    """Sends create, start, stop, remove and exec calls for containers of its own."""

    def __init__(self, work: Workload, number: int):
        super().__init__(name=f"faults-client-{number}", daemon=True)
        self.work, self.stack = work, work.stack
        self.rng = random.Random(number)
        self.number = number
        self.mine: list[int] = []
        self.count = 0

    def run(self):
        while self.work.take():
            try:
                self.one()
            except Exception as err:  # a killed server: the call failed, the test goes on
                self.work.answers[f"client error {type(err).__name__}"] += 1

    def call(self, method, path, body=None):
        """One API call; while the web server is down (connection refused), try again."""
        what = f"{method} {path.split('?')[0].rstrip('/').split('/')[-1]}"
        if what.split()[1].isdigit():
            what = f"{method} container"
        for _ in range(300):
            try:
                status, out = self.stack.api(method, path, body, timeout=30)
                break
            except urllib.error.URLError as err:
                if not isinstance(err.reason, ConnectionRefusedError):
                    raise
                self.work.answers["refused, tried again"] += 1
                time.sleep(0.1)
        self.work.answers[f"{what} {status}"] += 1
        if status == 503:
            time.sleep(0.3)  # Redis is down: the answer was at once, give it a moment
        return status, out

    def one(self):
        live = self._live()
        if len(live) < 2 or self.rng.random() < 0.3:
            return self._create()
        cid, desired = self.rng.choice(live)
        roll = self.rng.random()
        if desired == "running":
            if roll < 0.4:
                status, _ = self.call(
                    "POST", f"containers/{cid}/exec/", {"command": ["true"], "timeout": 5}
                )
                return
            verb, body = ("stop", {"timeout": 1}) if roll < 0.75 else ("remove", None)
        else:
            verb, body = ("start", {}) if roll < 0.7 else ("remove", None)
        if verb == "remove":
            status, out = self.call("DELETE", f"containers/{cid}/?force=true&wait=15")
        else:
            status, out = self.call("POST", f"containers/{cid}/{verb}/?wait=15", body)
        self._await(status, out)

    def _live(self) -> list[tuple[int, str]]:
        if not self.mine:
            return []
        marks = ",".join("?" * len(self.mine))
        return self.stack.sql(
            f"SELECT id, desired_state FROM containers_container WHERE id IN ({marks}) "
            "AND desired_state != 'removed'",
            *self.mine,
        )

    def _create(self):
        self.count += 1
        spec = {
            "image": "busybox",
            "name": f"f{self.number}n{self.count}",
            "command": ["sleep", "1000"],
            "restart": {"name": "unless-stopped"},
        }
        if self.rng.random() < 0.25:
            spec["network"] = {"ports": [{"container_port": 80, "host_port": free_port()}]}
        body = {"team": self.stack.team, "host": self.stack.host, "start": True, "spec": spec}
        status, out = self.call("POST", "containers/?wait=15", body)
        if status in (200, 202):
            self.mine.append(out["container"]["id"])
        else:
            # The web died in the request: the row may exist all the same; find it by name.
            rows = self.stack.sql(
                "SELECT id FROM containers_container WHERE name = ?", spec["name"]
            )
            self.mine.extend(r[0] for r in rows)
        self._await(status, out)

    def _await(self, status, out):
        """Wait for the operation the call made (read from the database: the web may be down)."""
        if status not in (200, 202) or not isinstance(out, dict) or "operation" not in out:
            return
        op_id = out["operation"]["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = self.stack.sql("SELECT state FROM operations_operation WHERE id = ?", op_id)
            if rows and rows[0][0] in DONE:
                return
            time.sleep(0.1)
        self.work.stuck.append(f"operation {op_id} not done after 60 s")


# -- the faults ----------------------------------------------------------------------------


def kill_agent(stack):
    stack.kill_worker()
    time.sleep(1)  # work keeps arriving for the dead agent
    stack.start_worker()


def kill_web(stack):
    stack.kill_web()
    time.sleep(1)
    stack.start_web()


def kill_redis(stack):
    stack.redis.proc.kill()
    stack.redis.proc.wait(10)
    time.sleep(2)
    stack.redis.start({"appendonly": "yes"})


def kill_shim(stack):
    """The monitors of two running containers: one idle, one whose stop waits out its grace."""
    rt = stack.runtime()
    running = [s for s in rt.list() if s.get("status") == "running"]
    assert len(running) >= 2, "too few running containers to take the monitors of"
    random.Random(7).shuffle(running)
    # busybox sleep as PID 1 ignores SIGTERM: the stop is parked until the shim's kill. The
    # clients go on meanwhile: one whose removal a client asked for is refused (409).
    for stopping in running:
        pk = int(stopping["spec"]["labels"][LABEL].partition("/")[2])
        status, out = stack.api("POST", f"containers/{pk}/stop/", {"timeout": 3})
        if status == 202:
            break
        assert status == 409, out
    else:
        pytest.fail("every running container was being removed")
    idle = next(s for s in running if s is not stopping)
    op_id = out["operation"]["id"]

    def parked():
        rows = stack.sql("SELECT state, result FROM operations_operation WHERE id = ?", op_id)
        return rows[0][0] in DONE or "waiting" in (rows[0][1] or "")

    stack.wait_until(parked, 30, "the stop to be parked")
    kill_monitor(rt, stopping["id"])
    kill_monitor(rt, idle["id"])


INJECT = {"agent": kill_agent, "web": kill_web, "redis": kill_redis, "shim": kill_shim}


# -- what must hold ------------------------------------------------------------------------


def problems(stack) -> list[str]:
    """What differs between the database and the host; empty when they agree."""
    found = []
    copies = collections.defaultdict(list)
    for state in stack.runtime().list():
        label = ((state.get("spec") or {}).get("labels") or {}).get(LABEL, "")
        host, _, pk = label.partition("/")
        if host == stack.host:
            copies[int(pk)].append(state)
    rows = stack.sql(
        "SELECT c.id, c.name, c.desired_state, c.observed_state FROM containers_container c "
        "JOIN hosts_host h ON h.id = c.host_id WHERE h.name = ?",
        stack.host,
    )
    known = {row[0] for row in rows}
    by_row, by_host = collections.Counter(), collections.Counter()
    for pk, name, desired, observed in rows:
        here = copies.get(pk, [])
        if len(here) > 1:
            found.append(f"{name}: {len(here)} copies on the host")
        if desired == "removed":
            if here or observed != "removed":
                found.append(f"{name}: removed in the database, {observed}, {len(here)} on host")
            continue
        if not here:
            if observed not in ("pending", "error"):
                found.append(f"{name}: observed {observed} but not on the host")
            elif desired in ("running", "paused"):
                found.append(f"{name}: desired {desired}, never made ({observed})")
            continue
        status = STATUS.get(here[0].get("status"), "error")
        by_row[observed] += 1
        by_host[status] += 1
        if observed != status:
            found.append(f"{name}: row says {observed}, host says {status}")
        want = {"running": ("running",), "paused": ("paused",)}.get(desired, ("created", "stopped"))
        if status not in want:
            found.append(f"{name}: desired {desired}, host has it {status}")
    if by_row != by_host:
        found.append(f"counts by state differ: rows {dict(by_row)}, host {dict(by_host)}")
    found += [f"runtime container of row {pk} that has no row" for pk in copies if pk not in known]
    unfinished = stack.sql(
        "SELECT o.id, o.kind, o.state FROM operations_operation o JOIN hosts_host h "
        "ON h.id = o.host_id WHERE h.name = ? AND o.state IN ('pending', 'running')",
        stack.host,
    )
    found += [f"operation {i} {kind} still {state}" for i, kind, state in unfinished]
    return found


def converge(stack, after: str) -> None:
    """Within two reconcile intervals (of a pass that may start late) nothing differs."""
    # Slack for the pass itself: on this 2-core machine in the middle of the whole suite a pass
    # that restarts a container whose monitor died took a few seconds (seen once: 2 s was short).
    deadline = time.monotonic() + 2 * RECONCILE_SECONDS + PASS_SLACK_SECONDS
    while True:
        left = problems(stack)
        if not left:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"after the {after} fault, not converged:\n"
                + "\n".join(left)
                + "\n\n"
                + _explained(stack, {line.partition(":")[0] for line in left})
            )
        time.sleep(0.2)


def _explained(stack, names: set[str]) -> str:
    """explain(), or why it could not: the failure's own message always comes through."""
    try:
        return explain(stack, names)
    except Exception as err:  # noqa: BLE001 (a diagnostic only)
        return f"(no details: {type(err).__name__}: {err})"


def explain(stack, names: set[str]) -> str:
    """What the database, the host and the agent's log say of the containers named: the
    next failure says why (the web and agent logs also go to BERTH_ARTIFACTS)."""
    out = []
    rt = stack.runtime()
    log_path = stack.logs / "agent.log"
    log = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
    for pk, name, runtime_id in stack.sql(
        "SELECT id, name, runtime_id FROM containers_container WHERE name IN "
        f"({','.join('?' * len(names))})",
        *sorted(names),
    ):
        out.append(f"== {name} (row {pk}, runtime {runtime_id[:12]})")
        for row in stack.sql(
            "SELECT id, kind, state, error, result, created_at, finished_at "
            "FROM operations_operation WHERE target_type = 'container' AND target_id = ? "
            "ORDER BY id",
            str(pk),
        ):
            out.append(f"  operation {row}")
        if runtime_id:
            with contextlib.suppress(Exception):
                paths = rt.store.paths(runtime_id)
                out.append(f"  state {rt.store.read_state(runtime_id)}")
                out.append(
                    f"  exit {paths.exit_file.read_text() if paths.exit_file.exists() else None}"
                )
                out.append(f"  stop flag {paths.stop_flag.exists()}")
                due = Path(rt.config.run_root) / "restart-due" / runtime_id
                out.append(f"  restart due {due.read_text() if due.exists() else None}")
            out += [f"  log: {line[:300]}" for line in log if runtime_id[:12] in line][-15:]
    return "\n".join(out)


def leftovers(stack, baseline: dict) -> list[str]:
    """Kernel objects and files of the test's prefix beyond the baseline (networks stay)."""
    now = kernel_objects(stack.prefix, stack.base, stack.root, stack.run_root)
    left = []
    for kind, items in now.items():
        extra = items - baseline.get(kind, set())
        left += [f"{kind}: {item}" for item in sorted(extra)]
    return left


# -- races the soak found (bench/churn_soak.py), on the agent's logic -------------------------


world = logic.world  # the agent-logic tests' fixture: one container on one host
_op, _run = logic._op, logic._run


class RemoveAskedMidPass(logic.FakeRuntime):
    """The web asks for a remove after the pass read its busy set, before it lists the host."""

    def __init__(self, ask):
        super().__init__()
        self.ask = ask

    def list(self):
        if self.ask:
            self.ask, ask = None, self.ask
            ask()
        return super().list()


def test_a_pass_leaves_a_remove_asked_during_it_to_the_remove(world):
    asked = []

    def ask():
        Container.objects.filter(id=world["container"].id).update(desired_state="removed")
        asked.append(_op(world, "container.remove", force=True))

    world["rt"] = rt = RemoveAskedMidPass(None)
    assert _run(world, _op(world, "container.create", start=True))["state"] == "succeeded"
    rt.ask = ask
    reconcile.reconcile_host(world["host"].name, rt=rt)
    assert asked and len(rt.list()) == 1  # not deleted under the remove's feet
    assert _run(world, asked[0])["state"] == "succeeded"
    assert rt.list() == []


def test_a_remove_whose_container_vanished_meanwhile_succeeds(world):
    rt = world["rt"]
    assert _run(world, _op(world, "container.create", start=True))["state"] == "succeeded"
    delete = rt.delete

    def deleted_first(ref, force=False):
        delete(ref, force=True)  # another pass was quicker
        raise NotFound(f"no such container: {ref}")

    rt.delete = deleted_first
    out = _run(world, _op(world, "container.remove", force=True))
    assert out["state"] == "succeeded", out
    assert Container.objects.get(id=world["container"].id).observed_state == "removed"


# -- issue 20: a long exec holds no worker ---------------------------------------------------


def _sleeps(stack, argv: bytes) -> int:
    """Processes running `argv` inside this stack's containers."""
    found = 0
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and (proc / "cmdline").read_bytes() == argv:
                found += f"/{stack.prefix}/" in (proc / "cgroup").read_text()
    return found


def test_long_execs_do_not_delay_another_teams_create(faulty):
    """Four execs of a 10 s command (the agent has two short-lane workers) and, meanwhile,
    another team's create: it finishes while all four still run (run before the faults, on
    the same stack)."""
    stack = faulty
    stack.manage(
        "shell", "-c", "from accounts.models import Team; Team.objects.get_or_create(name='e2e-b')"
    )
    spec = {"image": "busybox", "command": ["sleep", "1000"], "network": {"mode": "none"}}
    body = {"team": stack.team, "host": stack.host, "start": True}
    _, out = stack.api(
        "POST", "containers/?wait=60", {**body, "spec": {**spec, "name": "xlong"}}, expect=200
    )
    cid = out["container"]["id"]
    answers = []

    def long_exec():
        answers.append(
            stack.api(
                "POST", f"containers/{cid}/exec/", {"command": ["sleep", "10"], "timeout": 30}
            )
        )

    execs = [threading.Thread(target=long_exec) for _ in range(4)]
    for thread in execs:
        thread.start()
    stack.wait_until(lambda: _sleeps(stack, b"sleep\x0010\x00") == 4, 30, "four execs to run")
    other = {**body, "team": "e2e-b", "spec": {**spec, "name": "xother"}}
    _, made = stack.api("POST", "containers/?wait=60", other, expect=200)
    assert made["operation"]["state"] == "succeeded", made
    # Not a clock: the order. The create was done while every exec still ran its command.
    assert _sleeps(stack, b"sleep\x0010\x00") == 4 and all(t.is_alive() for t in execs)
    for thread in execs:
        thread.join(60)
    assert [a for a in answers if a != (200, {"exit_code": 0, "output": ""})] == []
    for pk in (cid, made["container"]["id"]):
        stack.api("DELETE", f"containers/{pk}/?wait=60&force=true", expect=200)


# -- the faults test -------------------------------------------------------------------------


def test_converges_after_each_fault_and_leaves_nothing(faulty):
    stack = faulty
    # What the stack holds with no container: the default network's bridge and nft table
    # (made with the first container that publishes a port), never the agent's processes.
    body = {
        "team": stack.team,
        "host": stack.host,
        "start": True,
        "spec": {
            "image": "busybox",
            "name": "fwarm",
            "command": ["sleep", "1000"],
            "network": {"ports": [{"container_port": 80, "host_port": free_port()}]},
        },
    }
    _, out = stack.api("POST", "containers/?wait=60", body, expect=200)
    stack.api("DELETE", f"containers/{out['container']['id']}/?wait=60&force=true", expect=200)
    baseline = kernel_objects(stack.prefix, stack.base, stack.root, stack.run_root)
    baseline["process"] = set()
    t0 = time.monotonic()
    work = Workload(stack)
    work.clients = [Client(work, n) for n in range(CLIENTS)]
    for client in work.clients:
        client.start()
    try:
        for name, at in FAULTS:
            stack.wait_until(lambda at=at: work.sent >= at, 120, f"{at} operations sent")
            began = time.monotonic()
            INJECT[name](stack)
            back = time.monotonic()
            work.pause()
            paused = time.monotonic()
            converge(stack, name)
            print(
                f"{name}: back in {back - began:.1f} s, clients paused in {paused - back:.1f} s,"
                f" converged in {time.monotonic() - paused:.1f} s"
            )
            work.resume()
        for client in work.clients:
            client.join(180)
        converge(stack, "last")
    finally:
        work.resume()
        work.sent = TOTAL_OPERATIONS
    assert not work.stuck, work.stuck
    # A fault may answer 503 (Redis down, host busy); never an internal error.
    assert not [k for k in work.answers if k.endswith(" 500")], work.answers
    print(f"workload and faults: {time.monotonic() - t0:.1f} s")
    print("answers:", json.dumps(work.answers, sort_keys=True))
    states = collections.Counter(r[0] for r in stack.sql("SELECT state FROM operations_operation"))
    print("operations:", dict(states))

    # Everything goes through the API; then nothing of the prefix may be left.
    live = stack.sql("SELECT id FROM containers_container WHERE desired_state != 'removed'")
    with ThreadPoolExecutor(4) as pool:
        gone = pool.map(
            lambda row: stack.api("DELETE", f"containers/{row[0]}/?wait=60&force=true"), live
        )
    assert [answer for answer in gone if answer[0] != 200] == []
    converge(stack, "removal")
    print(f"removed everything: {time.monotonic() - t0:.1f} s")
    stack.kill_worker()  # the agent's group, with its fork servers: none of it may linger
    deadline = time.monotonic() + 2 * RECONCILE_SECONDS + PASS_SLACK_SECONDS
    while (left := leftovers(stack, baseline)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, "left on the host:\n" + "\n".join(left)
    verdict = stack.manage("verify_audit_chain", "--skip-checks", check=False)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
