"""greenlight's settings as data: every field with its environment variable, default,
description and JSON schema, read from the settings classes themselves.

From this one walk come the Helm chart's ``config:`` values (``values.yaml``), their part of
``values.schema.json``, and the README's configuration reference (``hack/update-chart-config.py``
writes them; tests check they are current), so none of them can drift from the code.

Names: a section field is ``GREENLIGHT_<SECTION>__<FIELD>``; the provider section keeps the
provider layer's own names, ``GREENLIGHT_<FIELD>`` and ``GREENLIGHT_<PROVIDER>_<FIELD>``
(``GREENLIGHT_PROVIDER``, ``GREENLIGHT_ELECTRICITYMAPS_BASE_URL``). Some fields are set by the
chart from its own values (ports, names, service accounts: :data:`CHART_MANAGED`) and
credentials come from a Secret (:data:`CREDENTIALS`); they are listed but are not ``config:``.
"""

from __future__ import annotations

import copy
import json
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from webhook.carbon.config import ProviderSettings
from webhook.config.settings import Settings

Path_ = tuple[str, ...]
Source = Literal["config", "chart", "secret"]

PROVIDERS = "providers"
# Fields the chart sets from its own values: (path prefix, the chart value that sets it).
CHART_MANAGED: Mapping[Path_, str] = {
    ("server", "host"): "all addresses (default)",
    ("server", "port"): "webhook.port",
    ("server", "cert_dir"): "/certs, the mounted certificate Secret",
    ("server", "metrics_port"): "metrics.port",
    ("server", "service"): "the webhook Service's name",
    ("server", "namespace"): "the release namespace",
    ("webhook", "trusted_usernames"): "greenlight's own service accounts",
    ("providers", "provider"): "provider.name",
    ("reconciler", "lease_name"): "reconciler.leaseName",
    ("reconciler", "lease_namespace"): "the release namespace",
    ("reconciler", "identity"): "the Pod name",
    ("reconciler", "history_configmap"): "reconciler.historyConfigMap",
    ("kueue", "admission_check_enabled"): "kueue.admissionCheck.enabled",
    ("energy", "profiles_file"): "gpuProfiles (mounted file)",
    ("energy", "calibration_file"): "gpuCalibration (mounted file)",
}
# Credentials: from the chart's provider Secret (or provider.existingSecret).
CREDENTIALS: Mapping[Path_, str] = {
    ("providers", "electricitymaps", "api_key"): "provider.electricityMapsApiKey",
    ("providers", "watttime", "username"): "provider.wattTimeUsername",
    ("providers", "watttime", "password"): "provider.wattTimePassword",
}
# Go-style duration strings that ``Seconds`` fields accept besides a number of seconds.
DURATION_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"^\+?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$",
}


@dataclass(frozen=True)
class Setting:
    """One leaf of the settings."""

    path: Path_
    env: str
    default: Any
    description: str
    schema: dict[str, Any]
    source: Source
    chart_value: str
    duration: bool = False

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def _model_class(info: FieldInfo) -> type[BaseModel] | None:
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _accepts_duration(info: FieldInfo) -> bool:
    return any(
        getattr(getattr(m, "func", None), "__name__", "") == "_seconds" for m in info.metadata
    )


def _is_secret(info: FieldInfo) -> bool:
    return "SecretStr" in repr(info.annotation) or info.annotation is SecretStr


def _clean(schema: Any) -> Any:
    """Drop pydantic's titles, defaults and path formats (values.yaml holds the defaults)."""
    if isinstance(schema, dict):
        return {
            k: _clean(v)
            for k, v in schema.items()
            if k not in ("title", "default") and not (k == "format" and v == "path")
        }
    if isinstance(schema, list):
        return [_clean(v) for v in schema]
    return schema


def _leaf_schema(model: type[BaseModel], name: str, info: FieldInfo) -> dict[str, Any]:
    schema = _clean(copy.deepcopy(model.model_json_schema()["properties"][name]))
    description = schema.pop("description", info.description or "")
    if _accepts_duration(info):
        schema = {"anyOf": [schema, DURATION_SCHEMA]}
    schema["description"] = description
    return dict(schema)


def _source(path: Path_) -> tuple[Source, str]:
    for prefix, value in CHART_MANAGED.items():
        if path[: len(prefix)] == prefix:
            return "chart", value
    if path in CREDENTIALS:
        return "secret", CREDENTIALS[path]
    return "config", "config." + ".".join(path)


def _leaves(
    model: type[BaseModel], path: Path_, env_prefix: str, nested: bool
) -> Iterator[Setting]:
    defaults = model().model_dump(mode="json")
    for name, info in model.model_fields.items():
        sub = _model_class(info)
        env = f"{env_prefix}{name.upper()}"
        if nested and sub is not None:
            yield from _leaves(sub, (*path, name), f"{env}_", nested=False)
            continue
        source, chart_value = _source((*path, name))
        default = defaults[name]
        if _is_secret(info):
            default = None
        yield Setting(
            path=(*path, name),
            env=env,
            default=default,
            description=" ".join((info.description or "").split()),
            schema=_leaf_schema(model, name, info),
            source=source,
            chart_value=chart_value,
            duration=_accepts_duration(info),
        )


def settings_fields() -> list[Setting]:
    """Every leaf setting, in the order of the settings classes."""
    fields: list[Setting] = []
    for section, info in Settings.model_fields.items():
        model = _model_class(info)
        if model is None:
            continue
        if section == PROVIDERS:
            fields += _leaves(ProviderSettings, (PROVIDERS,), "GREENLIGHT_", nested=True)
        else:
            fields += _leaves(model, (section,), f"GREENLIGHT_{section.upper()}__", nested=False)
    return fields


def schema_definitions() -> dict[str, Any]:
    """The ``$defs`` the leaf schemas refer to (enums, nested models), merged."""
    merged: dict[str, Any] = {}
    models: list[type[BaseModel]] = [ProviderSettings]
    models += [m for m in map(_model_class, Settings.model_fields.values()) if m is not None]
    for model in models:
        for name, definition in model.model_json_schema().get("$defs", {}).items():
            cleaned = _clean(definition)
            if name in merged and merged[name] != cleaned:
                raise ValueError(f"two settings models define ${name} differently")
            merged[name] = cleaned
    return dict(sorted(merged.items()))


def _section_description(path: Path_) -> str:
    model: type[BaseModel] | None = ProviderSettings if path[0] == PROVIDERS else None
    if model is None:
        model = _model_class(Settings.model_fields[path[0]])
    for name in path[1:]:
        model = _model_class(model.model_fields[name]) if model is not None else None
    doc = (model.__doc__ or "") if model is not None else ""
    return " ".join(doc.split("\n\n")[0].split())


def _tree() -> dict[Path_, list[Setting]]:
    """Config leaves grouped by their parent path, in order."""
    groups: dict[Path_, list[Setting]] = {}
    for setting in settings_fields():
        if setting.source == "config":
            groups.setdefault(setting.path[:-1], []).append(setting)
    return groups


def config_schema() -> dict[str, Any]:
    """The JSON schema of the chart's ``config:`` value."""
    root: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "description": "greenlight's settings (GREENLIGHT_* variables), by section.",
        "properties": {},
    }
    for parent, leaves in _tree().items():
        node = root
        for depth, name in enumerate(parent):
            node = node["properties"].setdefault(
                name,
                {
                    "type": "object",
                    "additionalProperties": False,
                    "description": _section_description(parent[: depth + 1]),
                    "properties": {},
                },
            )
        for leaf in leaves:
            node["properties"][leaf.path[-1]] = leaf.schema
    return root


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    text: str = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return text.removesuffix("\n...\n").strip()


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}" for line in textwrap.wrap(text, width=96 - len(indent))]


def values_block() -> str:
    """The ``config:`` block of values.yaml: every setting with its default and description."""
    lines = [
        "config:",
    ]
    opened: Path_ = ()
    for parent, leaves in _tree().items():
        common = 0
        while common < min(len(opened), len(parent)) and opened[common] == parent[common]:
            common += 1
        for depth in range(common, len(parent)):
            indent = "  " * (depth + 1)
            lines.append("")
            lines += _comment(_section_description(parent[: depth + 1]), indent)
            lines.append(f"{indent}{parent[depth]}:")
        opened = parent
        indent = "  " * (len(parent) + 1)
        for leaf in leaves:
            lines += _comment(f"{leaf.description} [{leaf.env}]", indent)
            lines.append(f"{indent}{leaf.path[-1]}: {_yaml_scalar(leaf.default)}")
    return "\n".join(lines) + "\n"


def reference_markdown() -> str:
    """The README's configuration reference: one row per variable."""
    rows = [
        "| variable | chart value | default | meaning |",
        "|---|---|---|---|",
    ]
    for setting in settings_fields():
        default = "" if setting.default in (None, {}, []) else f"`{_yaml_scalar(setting.default)}`"
        description = setting.description.replace("|", "\\|")
        if setting.duration:
            description += " (seconds, or a duration such as `90m`)"
        rows.append(f"| `{setting.env}` | {setting.chart_value} | {default} | {description} |")
    return "\n".join(rows) + "\n"
