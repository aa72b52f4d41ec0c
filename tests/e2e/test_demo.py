"""The README's run command: `greenlight demo` brings everything up and shows the decisions."""

import os
import re
import subprocess
import sys
from pathlib import Path

from webhook.devtools import demo_jobs as demo


def test_demo_judges_the_experiments_jobs_jobset_and_queued_job_and_tears_down(
    tmp_path: Path,
) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "webhook", "demo", "--exit", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    for name in demo.JOB_NAMES:
        row = re.search(rf"^{name}\s+(true|false)\s+(deferred|run-now)\s+(\S+)", out, re.M)
        assert row, f"no decision row for {name} in:\n{out}"
        suspended, decision, release_at = row.groups()
        # Deferred Jobs are stored suspended with a release time; run-now Jobs are not held.
        assert (suspended == "true") == (decision == "deferred")
        if decision == "deferred":
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", release_at)
    # The gang and the queued Job (make test builds the controllers, as make run does).
    row = re.search(rf"^{demo.JOBSET_NAME}\s+(true|false)\s+(deferred|run-now)\s", out, re.M)
    assert row, f"no decision row for the JobSet in:\n{out}"
    assert (row.group(1) == "true") == (row.group(2) == "deferred")
    assert not re.search(rf"^{demo.JOBSET_NAME}-leader-0\s", out, re.M)  # children left out
    held = re.search(rf"^\S+\s+{demo.QUEUED_JOB_NAME}\s+(Pending|Ready)\s+(.*)$", out, re.M)
    assert held, f"no Kueue Workload row in:\n{out}"
    assert held.group(1) == "Ready" or "held for a cleaner window" in held.group(2)
    assert re.search(r"curl --cacert \S+ca\.crt https://127\.0\.0\.1:\d+/healthz", out)
    assert "/metrics" in out
    # Both greenlight processes logged, and nothing of the demo's cluster is left running.
    assert (tmp_path / "webhook.log").stat().st_size > 0
    assert (tmp_path / "reconciler.log").exists()
    leftover = subprocess.run(
        ["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert leftover.stdout.strip() == ""
