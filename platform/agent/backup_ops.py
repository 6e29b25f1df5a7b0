"""Backup operations on a host: its share of a backup set, and its part of a restore.

`backup.host` snapshots the host's named volumes and its containers' upper layers into the
restic repository (running containers frozen for the copy), and with images "blobs" its image
store in a snapshot of its own; `backup.restore_host` loads those images, restores volumes, re-creates the host's containers from their stored specs (the policy re-checked as
for any create), puts their upper layers back, and starts the ones that ran. Both reload
every row by id from the operation's host; the operation's params name only what to take.
"""

from pathlib import Path
from types import SimpleNamespace

from agent import containers_ops, lookup
from backups import conf, joins
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from runtime.backup import hostdata
from runtime.backup.restic import BackupError, Repository
from runtime.errors import BerthError, InvalidSpec
from volumes.models import Volume

LIVE_DESIRED = (Container.Desired.RUNNING, Container.Desired.PAUSED)


def _repository(op) -> Repository:
    location = str(op.params.get("repository") or "")
    if not location or (":" not in location.split("/")[0] and not location.startswith("/")):
        raise InvalidSpec("the operation names no usable backup repository")
    return Repository(location, conf.password_file())


def _live_containers(op):
    return Container.objects.filter(host_id=op.host_id).filter(NOT_REMOVED)


def backup_host(rt, op):
    """Snapshot this host's selected volumes and every live container's upper layer."""
    repo = _repository(op)
    wanted = op.params.get("volumes", "all")
    volumes = Volume.objects.filter(host_id=op.host_id)
    if wanted == "none":
        volumes = volumes.none()
    elif wanted != "all":
        volumes = volumes.filter(name__in=list(wanted))
    uppers = {}
    for container in _live_containers(op).exclude(runtime_id=""):
        state = lookup.find(rt, container)
        if state is not None:
            uppers[str(container.pk)] = state["id"]
    set_id = str(op.params.get("set") or "")
    images = None
    if op.params.get("images") == "blobs":
        # Before the freeze: copying images does not need the containers still.
        images = hostdata.back_up_images(rt, repo, host=op.host.name, set_id=set_id)
    part = hostdata.back_up(
        rt,
        repo,
        host=op.host.name,
        set_id=set_id,
        volumes=sorted(v.name for v in volumes),
        uppers=uppers,
    )
    if images is not None:
        part["images"] = images
    return part


def _rebind(container, new_ids: dict, names: dict) -> None:
    """Point a joiner's references at its targets' new runtime ids (saved in its row, which
    the policy check reads); a target that did not come back is this container's failure."""
    spec, missing = joins.rebind(container.spec or {}, new_ids)
    if missing:
        gone = ", ".join(names.get(old, old[:12]) for old in missing)
        raise BackupError(f"it joins or links to container(s) {gone}, which did not come back")
    if spec is not container.spec:
        Container.objects.filter(pk=container.pk).update(spec=spec)
        container.spec = spec


def _restore_container(rt, staging, container, upper_rel):
    """Create one container from its spec, put its upper layer back, start it if it ran;
    returns its runtime state."""
    quiet = SimpleNamespace(params={})
    containers_ops.create(rt, quiet, container)
    state = lookup.find(rt, container)
    if upper_rel:
        hostdata.place(staging / upper_rel, hostdata.upper_dir(rt, state["id"]), merge=True)
    if container.desired_state in LIVE_DESIRED:
        containers_ops.start(rt, quiet, container)
        if container.desired_state == Container.Desired.PAUSED:
            containers_ops.pause(rt, quiet, container)
    container.refresh_from_db()
    return container.observed_state, state["id"]


def restore_host(rt, op):
    """Restore this host's volumes, then its containers; report what did not come back."""
    repo = _repository(op)
    snapshot = str(op.params.get("snapshot") or "")
    volumes = op.params.get("volumes") or {}
    uppers = op.params.get("uppers") or {}
    old_ids = {str(k): str(v) for k, v in (op.params.get("runtime_ids") or {}).items()}
    if not snapshot and (volumes or uppers):
        raise BackupError("the backup set names no snapshot for this host's data")
    restored, failed = {"volumes": [], "containers": {}}, {}
    root = Path(rt.config.root)
    images = op.params.get("images") or {}
    if images.get("snapshot"):
        # Images first: the containers are created from them, with no registry needed.
        try:
            restored["images"] = hostdata.restore_images(rt, repo, images)
        except (BerthError, OSError) as err:
            failed["images"] = str(err)
    # One restic run for the whole host: volumes and upper layers land in a scratch
    # directory, then each is moved into place.
    with hostdata.staged(rt, repo, snapshot, sorted({*volumes.values(), *uppers.values()})) as st:
        for name, rel in sorted(volumes.items()):
            try:
                hostdata.place(st / rel, root / hostdata.volume_path(name))
                Volume.objects.filter(host_id=op.host_id, name=name).update(state="ready")
                restored["volumes"].append(name)
            except (BerthError, OSError) as err:
                failed[f"volume:{name}"] = str(err)
        live = list(_live_containers(op).order_by("created_at", "id"))
        # Targets before the containers that join them; old runtime ids -> new ones.
        names = {old_ids[str(c.pk)]: c.name for c in live if str(c.pk) in old_ids}
        new_ids = {}
        for container in joins.order(live, old_ids):
            try:
                _rebind(container, new_ids, names)
                observed, new_id = _restore_container(
                    rt, st, container, uppers.get(str(container.pk), "")
                )
                restored["containers"][str(container.pk)] = observed
                if str(container.pk) in old_ids:
                    new_ids[old_ids[str(container.pk)]] = new_id
            except (BerthError, OSError, Container.DoesNotExist) as err:
                failed[f"container:{container.name}"] = str(err)
    return {"restored": restored, "failed": failed}


HANDLERS = {"backup.host": backup_host, "backup.restore_host": restore_host}
