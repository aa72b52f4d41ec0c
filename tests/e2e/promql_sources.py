"""Every PromQL expression greenlight ships, found where its consumers read it.

- Grafana dashboards (``dashboards/*.json``): every ``expr`` anywhere in the JSON (panels, rows,
  collapsed rows' panels), with Grafana's built-in and template variables substituted so that
  Prometheus can evaluate it; and the templating variables, which are not PromQL:
  ``label_values(...)``, ``query_result(...)`` and ``metrics(...)`` become the Prometheus API
  calls Grafana makes for them, ``datasource``/``custom``/``interval``/``constant``/``textbox``/
  ``adhoc`` variables query nothing.
- Alert rules (``charts/greenlight/files/prometheus-rules.yaml``, the chart's PrometheusRule).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
RULES_FILE = ROOT / "charts" / "greenlight" / "files" / "prometheus-rules.yaml"

# Grafana's built-in variables, as a 5-minute dashboard range with a 1-minute interval.
BUILTINS = {
    "__rate_interval_ms": "60000",
    "__rate_interval": "1m",
    "__interval_ms": "60000",
    "__interval": "1m",
    "__range_ms": "300000",
    "__range_s": "300",
    "__range": "5m",
    "__auto": "1m",
}
# Template variables stand for "All": Grafana's default all-value for a regex matcher.
ALL = ".*"
NOT_QUERIES = frozenset({"datasource", "custom", "interval", "constant", "textbox", "adhoc"})
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?:(?P<match>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$"
)
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.+)\)\s*$")
_METRICS = re.compile(r"^\s*metrics\((?P<regex>.*)\)\s*$")
METRIC = re.compile(r"\bgreenlight_[a-z0-9_]+\b")


class UnsupportedQueryError(ValueError):
    """A dashboard query this suite does not know how to send to Prometheus."""


@dataclass(frozen=True)
class Query:
    """One thing to ask Prometheus: an instant query, or a label-values lookup."""

    origin: str  # where it came from, for the failure message
    kind: Literal["expr", "label_values"]
    text: str  # the PromQL (for label_values: the match[] selector, or "")
    label: str = ""

    def metrics(self) -> set[str]:
        return set(METRIC.findall(self.text))


def substitute(expr: str, template_variables: set[str], origin: str) -> str:
    """``expr`` with Grafana's variables replaced; an unknown variable is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in template_variables:
            return ALL
        raise UnsupportedQueryError(
            f"{origin}: {expr!r} uses ${name}, which is neither a Grafana built-in "
            f"({', '.join(sorted(BUILTINS))}) nor a templating variable of the dashboard"
        )

    return _VARIABLE.sub(replace, expr)


def _exprs(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        expr = node.get("expr")
        if isinstance(expr, str) and expr.strip():
            yield path, expr
        for key, value in node.items():
            if key != "templating":
                yield from _exprs(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            title = value.get("title") if isinstance(value, dict) else None
            yield from _exprs(value, f"{path}[{title or index}]")


def dashboard_queries(path: Path) -> list[Query]:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    variables = dashboard.get("templating", {}).get("list", [])
    names = {v["name"] for v in variables}
    queries = [
        Query(f"{path.name}{where}", "expr", substitute(expr, names, f"{path.name}{where}"))
        for where, expr in _exprs(dashboard, "")
    ]
    for variable in variables:
        origin = f"{path.name} templating variable ${variable['name']}"
        kind = variable.get("type", "query")
        if kind in NOT_QUERIES:
            continue
        if kind != "query":
            raise UnsupportedQueryError(f"{origin}: variable type {kind!r} is not handled here")
        raw = variable.get("query")
        text = raw.get("query", "") if isinstance(raw, dict) else str(raw or "")
        text = substitute(text, names - {variable["name"]}, origin)
        if match := _LABEL_VALUES.match(text):
            queries.append(Query(origin, "label_values", match["match"] or "", match["label"]))
        elif match := _QUERY_RESULT.match(text):
            queries.append(Query(origin, "expr", match["expr"]))
        elif match := _METRICS.match(text):
            queries.append(Query(origin, "label_values", "", "__name__"))
        else:
            raise UnsupportedQueryError(
                f"{origin}: {text!r} is not label_values(...), query_result(...) or metrics(...)"
            )
    return queries


def rule_queries(path: Path = RULES_FILE) -> list[Query]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        Query(f"{path.name} {rule.get('alert') or rule.get('record')}", "expr", rule["expr"])
        for group in document["groups"]
        for rule in group["rules"]
    ]
