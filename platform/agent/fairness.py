"""Teams take turns on a host: a per-team limit on running operations, served round-robin.

Each `agent.execute_operation` message is one *turn* of a lane's worker (short or long
queue). The message's operation joins its team's waiting list in Redis; the turn then runs
the operation of the next team in the ring whose running count is below its limit (not
necessarily the one that came with the message). So a team that sends fifty operations at
once holds at most `limit` workers, and another team's single request, arriving behind the
fifty, is run by the first free turn instead of after all of them.

A turn that finds only teams at their limit is *owed*: when one of their operations ends, the
worker sends the lane an `agent.fair_turn` message (signed with the host's key) that takes it.
So every message runs at most one operation and no worker loops on other work while messages
wait in its queue.

The rows stay the truth: a waiting operation is `pending` in the database, so if Redis loses
the lists the reconciler runs it from its row (agent/reconcile.py, after 60 s), and running
counts are leases that expire, so a worker killed mid-operation frees its team's slot.
"""

import logging
import os
import time

from operations import completion
from operations.models import Operation

log = logging.getLogger(__name__)

PREFIX = "berth:fair:"
NO_TEAM = "-"  # operations without a team (host-wide admin work) form one team of their own
LEASE_SECONDS = {"short": 600, "long": 6 * 3600}

# KEYS: [1] ring of teams with waiting work, [2] owed turns; ARGV: prefix, now, lease, limit.
# Returns the operation id to run now, or false. The ring is rotated: the team served goes to
# the back, so teams are served in turn.
_TAKE = """
local ring, owed = KEYS[1], KEYS[2]
local prefix, now, lease, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local waiting_anywhere = false
for _ = 1, redis.call('LLEN', ring) do
  local team = redis.call('LPOP', ring)
  local queue, running = prefix .. 'q:' .. team, prefix .. 'run:' .. team
  if redis.call('LLEN', queue) > 0 then
    redis.call('ZREMRANGEBYSCORE', running, '-inf', now)
    if redis.call('ZCARD', running) < limit then
      local op = redis.call('LPOP', queue)
      redis.call('ZADD', running, now + lease, op)
      redis.call('EXPIRE', running, lease)
      if redis.call('LLEN', queue) > 0 then redis.call('RPUSH', ring, team) end
      return op
    end
    waiting_anywhere = true
    redis.call('RPUSH', ring, team)
  end
end
if waiting_anywhere then redis.call('INCR', owed) end
return false
"""


def _submit_lua(ring: str, team_list: str, team: str, op: str) -> str:
    """Lua that queues operation `op` on its team's list and the team on the ring (once)."""
    return f"""
redis.call('RPUSH', {team_list}, {op})
local listed = false
for _, name in ipairs(redis.call('LRANGE', {ring}, 0, -1)) do
  if name == {team} then listed = true break end
end
if not listed then redis.call('RPUSH', {ring}, {team}) end
"""


# KEYS: [1] ring, [2] the team's waiting list; ARGV: team, operation id.
_SUBMIT = _submit_lua("KEYS[1]", "KEYS[2]", "ARGV[1]", "ARGV[2]") + "return 1\n"

# Submit then take in one round trip (the message's own operation joins its team's list and
# the turn picks whichever operation is next): KEYS ring, owed, the team's list; ARGV as
# _TAKE's, then the team and the operation.
_SUBMIT_TAKE = _submit_lua("KEYS[1]", "KEYS[3]", "ARGV[5]", "ARGV[6]") + _TAKE

# KEYS: [1] the team's running set, [2] owed turns; ARGV: operation id. Returns 1 when a
# turn was owed (the caller sends one), else 0.
_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
  redis.call('DECR', KEYS[2])
  return 1
end
return 0
"""


def lane() -> str:
    """The lane this worker serves: `short` (default) or `long` (BERTH_AGENT_LANE)."""
    return "long" if os.environ.get("BERTH_AGENT_LANE") == "long" else "short"


def team_limit(which: str | None = None) -> int:
    """Running operations one team may have in this lane of this host.

    BERTH_TEAM_SLOTS (short lane) / BERTH_TEAM_LONG_SLOTS (long lane); by default the lane's
    workers less a quarter (at least one held back), so a worker stays free to read the
    queue: another team's request behind a burst is reached at once, not after the burst.
    """
    which = which or lane()
    override = os.environ.get("BERTH_TEAM_LONG_SLOTS" if which == "long" else "BERTH_TEAM_SLOTS")
    if override:
        return max(1, int(override))
    workers = int(os.environ.get("BERTH_AGENT_CONCURRENCY") or 4)
    return max(1, workers - max(1, workers // 4))


class Scheduler:
    """The fair lists of one lane of one host."""

    def __init__(self, host_name: str, which: str | None = None, client=None):
        self.host_name = host_name
        self.lane = which or lane()
        self.prefix = f"{PREFIX}{host_name}:{self.lane}:"
        self._client = client

    @property
    def client(self):
        if self._client is None:
            # Kept per process (a connection per turn cost about 6 ms of each operation).
            self._client = completion.broker_client()
        return self._client

    def submit(self, op_id: int, team: str) -> None:
        """Put the operation at the back of its team's waiting list."""
        self.client.eval(_SUBMIT, 2, self.prefix + "ring", self.prefix + "q:" + team, team, op_id)

    def take(self) -> int | None:
        """The operation whose turn it is (now counted as running), or None."""
        op = self.client.eval(
            _TAKE,
            2,
            self.prefix + "ring",
            self.prefix + "owed",
            self.prefix,
            time.time(),
            LEASE_SECONDS[self.lane],
            team_limit(self.lane),
        )
        return int(op) if op else None

    def submit_and_take(self, op_id: int, team: str) -> int | None:
        """submit() then take(), atomically and in one round trip to Redis."""
        op = self.client.eval(
            _SUBMIT_TAKE,
            3,
            self.prefix + "ring",
            self.prefix + "owed",
            self.prefix + "q:" + team,
            self.prefix,
            time.time(),
            LEASE_SECONDS[self.lane],
            team_limit(self.lane),
            team,
            op_id,
        )
        return int(op) if op else None

    def release(self, op_id: int, team: str) -> bool:
        """The operation ended: free its slot; True when a turn is owed (send one)."""
        return bool(
            self.client.eval(_RELEASE, 2, self.prefix + "run:" + team, self.prefix + "owed", op_id)
        )


def team_of(op_id: int) -> str | None:
    """The team key of a pending operation; None when it is not pending (nothing to schedule)."""
    row = Operation.objects.filter(id=op_id).values("state", "team_id").first()
    if row is None or row["state"] != Operation.State.PENDING:
        return None
    return str(row["team_id"]) if row["team_id"] is not None else NO_TEAM


def turn(host_name: str, execute, *, op_id: int | None = None, task_id: str = "", send_turn=None):
    """One turn: queue `op_id` (if any) for its team, run whichever operation's turn it is.

    `execute(op_id, task_id)` runs one operation; `send_turn()` sends an owed turn to the lane.
    Without Redis (or for an operation that is not pending) the message's own operation runs
    directly: fairness must never be the reason work stops.
    """
    scheduler = Scheduler(host_name)
    team = None
    if op_id is not None:
        team = team_of(op_id)
        if team is None:
            # A stale or repeated message: the executor skips it (its claim finds nothing).
            return execute(op_id, task_id)
    try:
        chosen = scheduler.take() if team is None else scheduler.submit_and_take(op_id, team)
    except Exception as err:
        log.warning("fair scheduling unavailable (%s); running the operation directly", err)
        return execute(op_id, task_id) if op_id is not None else None
    if chosen is None:
        return {"state": "queued", "result": {}, "error": ""}
    chosen_team = team if chosen == op_id else _team_key(chosen)
    try:
        return execute(chosen, task_id if chosen == op_id else "")
    finally:
        try:
            if scheduler.release(chosen, chosen_team) and send_turn is not None:
                send_turn()
        except Exception as err:  # the reconciler still runs what waits, from the rows
            log.warning("could not hand on a turn: %s", err)


def _team_key(op_id: int) -> str:
    row = Operation.objects.filter(id=op_id).values("team_id").first()
    team = row["team_id"] if row else None
    return str(team) if team is not None else NO_TEAM
