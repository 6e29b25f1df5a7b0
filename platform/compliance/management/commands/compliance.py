"""`manage.py compliance [--format json] [--no-store]`: run every check now and print findings."""

import json

from django.core.management.base import BaseCommand

from compliance import services
from compliance.checks import by_id
from compliance.models import ComplianceRun
from compliance.queries import sort_by_severity


class Command(BaseCommand):
    """Run the compliance checks (stored as a run unless --no-store) and print the findings."""

    help = "Run every compliance check now and print the findings (text or JSON)."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument(
            "--no-store", action="store_true", help="evaluate only; store no run or findings"
        )

    def handle(self, *args, **options):
        if options["no_store"]:
            outcome = services.evaluate_now()
            rows = [
                {
                    "check_id": r.check_id,
                    "severity": r.severity,
                    "object_type": r.object_type,
                    "object_id": r.object_id,
                    "object_repr": r.object_repr,
                    "detail": r.detail,
                    "excepted": r.exception_id is not None,
                }
                for r in outcome.results
            ]
            head = {
                "run": None,
                "evaluations": outcome.evaluations,
                "failed": outcome.failed,
                "excepted": outcome.excepted,
            }
        else:
            run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
            rows = [
                {
                    "check_id": f.check_id,
                    "severity": f.severity,
                    "object_type": f.object_type,
                    "object_id": f.object_id,
                    "object_repr": f.object_repr,
                    "detail": f.detail,
                    "excepted": f.excepted,
                }
                for f in sort_by_severity(run.findings.all())
            ]
            head = {
                "run": run.pk,
                "evaluations": run.evaluations,
                "failed": run.failed,
                "excepted": run.excepted,
            }
        order = {"critical": 0, "high": 1, "medium": 2, "low": 3}
        rows.sort(key=lambda r: (order[r["severity"]], r["check_id"], r["object_repr"]))
        for row in rows:
            check = by_id(row["check_id"])
            row["title"] = check.title
            row["cis"] = check.cis
            row["remediation"] = check.remediation
        if options["format"] == "json":
            self.stdout.write(json.dumps(head | {"findings": rows}, indent=2))
            return
        for row in rows:
            mark = " (excepted)" if row["excepted"] else ""
            cis = f" [CIS {row['cis']}]" if row["cis"] else ""
            self.stdout.write(
                f"{row['severity'].upper():<8} {row['check_id']:<28} {row['object_type']} "
                f"{row['object_repr']}: {row['detail']}{cis}{mark}"
            )
        passed = head["evaluations"] - head["failed"]
        self.stdout.write(
            f"{head['evaluations']} evaluations, {head['failed']} failed, "
            f"{head['excepted']} excepted, {passed} passed"
        )
