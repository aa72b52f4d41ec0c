"""``workloads.enabled``: the kinds greenlight judges, from GREENLIGHT_WORKLOADS__ENABLED."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from webhook.config.settings import Settings
from webhook.config.workloads import KIND_NAMES, WorkloadSettings
from webhook.workloads.job import JOB
from webhook.workloads.jobset import JOBSET
from webhook.workloads.kinds import WORKLOADS


def test_every_known_kind_is_enabled_by_default() -> None:
    assert WorkloadSettings().workloads == WORKLOADS
    assert KIND_NAMES[:2] == ("Job", "JobSet")


def test_the_environment_names_the_kinds_as_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENLIGHT_WORKLOADS__ENABLED", '["JobSet", "Job"]')
    section = Settings().workloads
    assert section.workloads == (JOB, JOBSET)  # in the registry's order
    assert section.judges(JOBSET)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            ["Job", "Jobset"], "unknown workload kind(s) 'Jobset'; known: Job, JobSet", id="typo"
        ),
        pytest.param(["Job", "Job"], "a workload kind is listed twice", id="twice"),
        pytest.param([], "at least 1 item", id="empty"),
    ],
)
def test_a_bad_list_is_refused_naming_what_is_wrong(value: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=r"workloads\.enabled") as caught:
        Settings.model_validate({"workloads": {"enabled": value}})
    assert message in str(caught.value)
