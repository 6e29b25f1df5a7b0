#!/usr/bin/env python
"""Compliance at scale: checks over 500 containers, inventories of 50 images, and matching
50 images against a generated OSV export of 10,000 advisories.

A throwaway installation (its own SQLite file under a temporary BERTH_DATA_DIR, migrated
here) gets 500 container rows with varied specs (a third break some rule), 50 image rows,
and 50 images on disk as real layer directories (two layers each, a dpkg status of 300
packages in the upper one, 10 of them apk images). Measured, median of --runs:

- a full compliance pass over the rows (`services.evaluate_now`: container, image and site
  checks) and the same pass stored as a run (`services.run_compliance`: findings, team
  scores, audit event); the target is a stored pass over 500 containers in under 2 s;
- reading the 50 inventories from their layers (runtime/images/inventory.py, the agent's
  reader) and storing them;
- importing the 10,000-advisory OSV zip (`manage.py import_osv`'s service), and re-matching
  the 50 stored inventories against it (what follows every import; no image is read again).

No peer runs beside it: docker-bench-security, Trivy and Grype are not packaged in Debian 12
and Trivy and Grype need their online databases, which this machine may not reach.

    .venv/bin/python bench/compliance.py [--containers 500] [--images 50]
        [--advisories 10000] [--runs 5]
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "platform"), str(REPO)]


CPU = {}  # what -> median CPU milliseconds of this process (the rest is waiting: disk, locks)


def _median_ms(fn, runs: int, what: str = "") -> tuple[float, object]:
    times, cpu, value = [], [], None
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        value = fn()
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    CPU[what] = statistics.median(cpu)
    return statistics.median(times), value


def _spec(i: int) -> dict:
    spec = {
        "image": f"bench/app{i % 50}:1",
        "name": f"c{i}",
        "user": "1000",
        "read_only_rootfs": True,
        "limits": {"memory": 64 << 20, "pids": 100},
        "restart": {"name": "on-failure", "max_retries": 3},
        "namespaces": {"user": "private"},
        "cap_add": [],
        "mounts": [{"type": "volume", "source": f"v{i}", "target": "/data"}],
        "network": {"mode": "bridge", "ports": [{"container_port": 80, "host_port": 10000 + i}]},
    }
    if i % 3 == 0:  # a third break something
        spec.update(privileged=i % 2 == 0, cap_add=["SYS_ADMIN"], user=None)
        spec["limits"]["memory"] = None
        spec["network"]["ports"][0]["host_port"] = 80
    return spec


def _status_file(rng, names, n: int) -> bytes:
    out = []
    for name in rng.sample(names, n):
        version = f"{rng.randint(0, 2)}:{rng.randint(1, 9)}.{rng.randint(0, 20)}-{rng.randint(1, 5)}~deb12u{rng.randint(1, 9)}"
        out.append(
            f"Package: {name}\nStatus: install ok installed\nArchitecture: amd64\n"
            f"Source: {name}-src\nVersion: {version}\nDescription: bench package\n generated\n"
        )
    return "\n".join(out).encode()


def _apk_file(rng, names, n: int) -> bytes:
    out = []
    for name in rng.sample(names, n):
        out.append(
            f"P:{name}\nV:{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}-r{rng.randint(0, 9)}\nA:x86_64\no:{name}-src\n"
        )
    return "\n".join(out).encode()


def _layers(base: Path, i: int, rng, names) -> list[Path]:
    lower, upper = base / f"img{i}" / "l0", base / f"img{i}" / "l1"
    apk = i % 5 == 0
    release = (
        b"ID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=Alpine\n"
        if apk
        else b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian 12"\n'
    )
    (lower / "etc").mkdir(parents=True)
    (lower / "etc/os-release").write_bytes(release)
    if apk:
        (upper / "lib/apk/db").mkdir(parents=True)
        (upper / "lib/apk/db/installed").write_bytes(_apk_file(rng, names, 300))
    else:
        (lower / "var/lib/dpkg").mkdir(parents=True)
        (lower / "var/lib/dpkg/status").write_bytes(b"Package: old\nVersion: 1\n")
        (upper / "var/lib/dpkg").mkdir(parents=True)
        (upper / "var/lib/dpkg/status").write_bytes(_status_file(rng, names, 300))
    return [lower, upper]


def _osv_zip(path: Path, rng, names, count: int) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(count):
            apk = i % 5 == 0
            name = rng.choice(names) + "-src"
            fixed = (
                f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.0-r{rng.randint(0, 9)}"
                if apk
                else f"{rng.randint(0, 2)}:{rng.randint(1, 9)}.{rng.randint(0, 20)}-1~deb12u5"
            )
            record = {
                "id": f"BENCH-{i:05d}",
                "modified": "2026-01-01T00:00:00Z",
                "summary": f"generated advisory {i}",
                "affected": [
                    {
                        "package": {
                            "ecosystem": "Alpine:v3.19" if apk else "Debian:12",
                            "name": name,
                        },
                        "ranges": [
                            {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                        ],
                        "ecosystem_specific": {"urgency": rng.choice(["low", "medium", "high"])},
                    }
                ],
            }
            archive.writestr(f"BENCH-{i:05d}.json", json.dumps(record))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=500)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--advisories", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="berth-bench-compliance-"))
    os.environ["BERTH_DATA_DIR"] = str(work / "data")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    (work / "data").mkdir()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", "--skip-checks", verbosity=0)

    from django.utils import timezone

    from accounts.models import Team
    from compliance import inventories, matching, services
    from compliance.models import ComplianceRun, ImageInventory
    from containers.models import Container
    from hosts.models import Host
    from images.models import Image
    from runtime.images.inventory import read_inventory

    rng = random.Random(13)
    teams = [Team.objects.create(name=f"bench-{t}") for t in range(5)]
    host = Host.objects.create(name="bench-h1", state="up", last_heartbeat=timezone.now())
    images = Image.objects.bulk_create(
        [
            Image(
                host=host,
                team=teams[i % 5] if i % 2 else None,
                image_id=f"sha256:{i:064x}",
                repo_tags=[f"bench/app{i}:1"],
                config={"config": {"User": "app" if i % 2 else ""}},
                created=timezone.now(),
            )
            for i in range(args.images)
        ]
    )
    Container.objects.bulk_create(
        [
            Container(
                team=teams[i % 5],
                host=host,
                name=f"c{i}",
                image=f"bench/app{i % 50}:1",
                spec=_spec(i),
                desired_state="running",
                observed_state="running",
            )
            for i in range(args.containers)
        ]
    )

    check_ms, outcome = _median_ms(services.evaluate_now, args.runs, "check")
    stored_ms, run = _median_ms(
        lambda: services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND), args.runs, "run"
    )

    names = [f"pkg{n}" for n in range(3000)]
    layer_sets = [_layers(work / "layers", i, rng, names) for i in range(args.images)]
    rows = list(Image.objects.order_by("pk"))

    def read_all():
        return [read_inventory(layers) for layers in layer_sets]

    read_ms, found = _median_ms(read_all, args.runs)
    start = time.perf_counter()
    for row, inventory in zip(rows, found, strict=True):
        inventories.save(row, inventory.to_dict())
    save_ms = (time.perf_counter() - start) * 1000

    osv = work / "osv.zip"
    _osv_zip(osv, rng, names, args.advisories)
    import_ms, (result, matches) = _median_ms(
        lambda: services.do_import_osv(osv, filename=osv.name), 1, "import"
    )
    match_ms, matched = _median_ms(matching.rematch_all, args.runs, "match")

    packages = sum(len(i.packages) for i in found)
    print(
        f"compliance bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, runs={args.runs}"
    )
    print(
        f"checks, {args.containers} containers + {len(images)} images + site: "
        f"{check_ms:.0f} ms ({check_ms * 1000 / args.containers:.0f} µs per container), "
        f"{outcome.evaluations} evaluations, {outcome.failed} failed"
    )
    print(
        f"stored run (findings, team scores, audit): {stored_ms:.0f} ms "
        f"({stored_ms * 1000 / args.containers:.0f} µs per container, CPU {CPU['run']:.0f} ms); "
        "target < 2000 ms: "
        f"{'met' if stored_ms < 2000 else 'NOT met'}"
    )
    print(
        f"inventories of {args.images} images ({packages} packages) read from layers: "
        f"{read_ms:.0f} ms ({read_ms / args.images:.1f} ms per image); stored: {save_ms:.0f} ms"
    )
    print(
        f"OSV import of {result.records} advisories: {import_ms:.0f} ms "
        f"(CPU {CPU['import']:.0f} ms; including the first match, {matches} matches)"
    )
    print(
        f"re-match of {ImageInventory.objects.count()} inventories against them: {match_ms:.0f} ms "
        f"(CPU {CPU['match']:.0f} ms; {matched} matches)"
    )
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
