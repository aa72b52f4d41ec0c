"""Suite-wide test configuration: Hypothesis profiles.

``ci`` (chosen when ``CI=true``, as CI sets it) and ``dev`` (everywhere else) both drop the
per-example deadline and the "input generation is slow" health check: on a busy 2-core machine
generation and execution times say nothing about the code under test, and a suite that fails
under load blocks every submission at random. ``ci`` is also derandomised, so a failure there
reproduces exactly with the same command; ``dev`` keeps exploring new examples and records
failures in the local example database (``.hypothesis/``), which replays them first.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    database=None,
    print_blob=True,
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
)
