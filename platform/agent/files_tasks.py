"""The agent's task for a container's files (agent/files_ops.py), signed and decided.

One task, `agent.container_files`, carries the operation's name: `changes` needs the gate's
decision for container.top; reading or writing files (`stat`, `get`, `put`, `export`) is what an
exec as root could do, so it needs container.exec with root allowed. The envelope binds the
decision to this container. Archives do not travel in the task: the web names a file of the
shared data directory to write (`out`) or to read (`upload`; agent/files_ops.py).
"""

from celery import shared_task

from agent import admission, files_ops
from agent.hostname import this_host
from agent.runtime_handle import get_runtime
from agent.tasks import QueryFailed, QueryInvalid, _query_error
from containers.models import Container
from runtime.errors import BerthError
from trust.envelope import Refused

TASK = "agent.container_files"
# Operation -> (gate action the decision must be for, whether root must be allowed).
NEEDS = {
    "changes": ("container.top", False),
    "stat": ("container.exec", True),
    "get": ("container.exec", True),
    "export": ("container.exec", True),
    "put": ("container.exec", True),
}


def _check(op: str, container_id, claims) -> None:
    wanted, root = NEEDS[op]
    decision = claims.decision if isinstance(claims.decision, dict) else {}
    problem = ""
    if decision.get("action") != wanted:
        problem = f"{TASK} {op} needs a decision for {wanted}, not {decision.get('action')!r}"
    elif str(decision.get("object")) != str(container_id):
        problem = f"the decision behind {TASK} is for another object"
    elif root and decision.get("root_allowed") is not True:
        problem = f"{TASK} {op} needs a decision that allows root in the container"
    if problem:
        admission.refuse(TASK, this_host(), problem, None)
        raise Refused(problem)


@shared_task(name=TASK, throws=(QueryFailed,))
def container_files(container_id, op, params=None, envelope=None):
    """Run one file operation of agent/files_ops.py on a container of this host."""
    claims = admission.admit(TASK, [container_id, op, params], {}, envelope, host=this_host())
    if op not in NEEDS:
        raise QueryInvalid(f"unknown file operation {op!r}")
    _check(op, container_id, claims)
    # The signed call itself: an agent without the web's data directory shows it to the web to
    # fetch the upload or store the archive it names (agent/remote_files.py).
    message = {"task": TASK, "args": [container_id, op, params], "envelope": envelope}
    params = dict(params or {}, _message=message)
    container = (
        Container.objects.select_related("host")
        .filter(id=container_id, host__name=this_host())
        .first()
    )
    if container is None:
        raise QueryFailed(f"container {container_id} is not on host {this_host()}")
    try:
        result = files_ops.OPS[op](get_runtime(), container, params)
    except BerthError as err:
        raise _query_error(err) from None
    except OSError as err:
        raise QueryInvalid(f"{op}: {err.strerror or err}") from None
    return result
