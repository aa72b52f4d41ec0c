"""The reason codes: one enum, used by every rule, documented where users read them."""

from __future__ import annotations

import re
from pathlib import Path

from webhook.core.reasons import DECISION_REASONS, UNJUDGED, ReasonCode, decision_reasons

ROOT = Path(__file__).resolve().parents[2]
# Where the admission path chooses a code.
DECIDERS = (
    "webhook/admission/classify.py",
    "webhook/admission/mutate.py",
    "webhook/core/planner.py",
)


def test_the_readme_table_lists_every_recorded_pair_and_nothing_else() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `([a-z-]+)` \| ((?:`[a-z-]+`(?:, )?)+) \|", readme, re.MULTILINE)
    documented = {
        (decision, code)
        for code, decisions in rows
        if code in set(ReasonCode)
        for decision in re.findall(r"`([a-z-]+)`", decisions)
    }
    assert documented == {(d.value, c.value) for d, c in decision_reasons()}


def test_every_code_is_either_recorded_with_a_decision_or_unjudged() -> None:
    recorded = set().union(*DECISION_REASONS.values())
    assert recorded.isdisjoint(UNJUDGED)
    assert recorded | UNJUDGED == set(ReasonCode)


def test_the_deciders_name_codes_through_the_enum_only() -> None:
    """A code written as a string literal would escape the enum (and the counter's zeros)."""
    codes = {code.value for code in ReasonCode}
    used: set[str] = set()
    for path in DECIDERS:
        source = (ROOT / path).read_text()
        literals = set(re.findall(r'"([a-z]+(?:-[a-z]+)*)"', source))
        assert not literals & codes, f"{path} spells {literals & codes} as strings"
        used |= set(re.findall(r"ReasonCode\.([A-Z_]+)", source))
    assert used == {code.name for code in ReasonCode}, {c.name for c in ReasonCode} ^ used
