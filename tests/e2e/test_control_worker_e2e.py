"""scripts/berth-control: Celery beat and the berth.control worker run the site-wide work.

It takes compliance runs and backups off the web requests and the schedule, and must never load
the agent's tasks (which import `runtime`): it is a control-plane process, not a host's.
"""

import pytest

from tests.e2e.conftest import REPO, serving


@pytest.fixture(scope="module")
def control(web):
    """The stack's control worker, stopped by its pid."""
    log_path = web.logs / "control.log"
    args = [str(REPO / "scripts" / "berth-control"), "--loglevel", "INFO"]
    env = dict(web.env, BERTH_CONTROL_CONCURRENCY="1")
    with serving(args, env, log_path, "the control worker"):
        yield log_path


def test_the_control_worker_runs_a_compliance_run_sent_to_its_queue(web, control):
    banner = control.read_text()
    assert "compliance.run_scheduled" in banner and "backups.scheduled_backup" in banner
    assert "agent.execute_operation" not in banner  # the agent's tasks stay on the hosts
    code = (
        "from config.celery import app; "
        "app.send_task('compliance.run_scheduled', queue='berth.control')"
    )
    web.manage("shell", "-c", code)

    def stored():
        rows = web.sql("SELECT trigger FROM compliance_compliancerun")
        return rows if ("schedule",) in rows else None

    web.wait_until(stored, 60, "the scheduled compliance run")
