"""The ``Workload`` protocol: what greenlight reads from a workload and how it holds one back.

A workload kind (``batch/v1`` Job here; JobSet, PyTorchJob, RayJob ... share the shape) is one
module implementing :class:`Workload` over the object as a plain dict. Everything else in
greenlight (admission, reconciler, report) goes through it, so nothing outside this package reads
a workload's spec. Pure: no I/O.

Kueue's ``jobframework.GenericJob`` is the model: the few verbs a carbon-aware admission needs
(resources of the whole gang, the controlling owner, is it suspended, the patches that suspend
and release it), not a full object model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from webhook.core.resources import WorkloadResources


@dataclass(frozen=True, slots=True)
class GroupVersionKind:
    """A Kubernetes API kind, as an AdmissionReview names it (``request.kind``)."""

    group: str
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        """``batch/v1``; ``v1`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass(frozen=True, slots=True)
class OwnerReference:
    """The controlling owner of an object (``metadata.ownerReferences[controller=true]``)."""

    api_version: str
    kind: str
    name: str

    @property
    def group(self) -> str:
        """The API group of the owner (``""`` for the core group)."""
        return self.api_version.rpartition("/")[0]


@dataclass(frozen=True, slots=True)
class RunStatus:
    """How far a workload's run has got, as its status says (raw RFC 3339 strings: the
    reconciler parses and bounds them). ``outcome`` is ``Complete`` or ``Failed`` once it has
    finished, whatever the kind calls it, else None."""

    started_at: object = None
    finished_at: object = None
    outcome: str | None = None


class Workload(Protocol):
    """One workload kind. Implementations are stateless singletons (e.g. ``job.JOB``)."""

    @property
    def gvk(self) -> GroupVersionKind:
        """The kind this implementation reads."""
        ...

    @property
    def plural(self) -> str:
        """The resource name in the API path (``jobs``), for RBAC and webhook rules."""
        ...

    @property
    def suspend_path(self) -> tuple[str, ...]:
        """Where the object's suspend flag lives (``("spec", "suspend")`` for a Job)."""
        ...

    def resources(self, obj: Mapping[str, Any]) -> WorkloadResources:
        """Pods and GPUs of the whole workload (every replica and role: the energy of the
        gang). Raises ``JobSpecError`` naming a malformed field."""
        ...

    def run_status(self, obj: Mapping[str, Any]) -> RunStatus:
        """When the run started and whether (and how) it finished. Never raises: a malformed
        status reads as not started, not finished."""
        ...


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` as a mapping; anything else (absent, malformed) as an empty one."""
    if type(value) is dict:  # JSON-decoded objects: skip the slower abstract-class check
        return value
    return value if isinstance(value, Mapping) else {}


def controller_owner(obj: Mapping[str, Any]) -> OwnerReference | None:
    """The owner reference marked ``controller: true``, or None."""
    owners = mapping(obj.get("metadata")).get("ownerReferences")
    if not isinstance(owners, list):
        return None
    for owner in owners:
        if isinstance(owner, Mapping) and owner.get("controller") is True:
            return OwnerReference(
                api_version=str(owner.get("apiVersion", "")),
                kind=str(owner.get("kind", "")),
                name=str(owner.get("name", "")),
            )
    return None


def owner_references(obj: Mapping[str, Any]) -> list[OwnerReference]:
    """Every owner reference of ``obj`` (malformed entries left out)."""
    owners = mapping(obj.get("metadata")).get("ownerReferences")
    if not isinstance(owners, list):
        return []
    return [
        OwnerReference(
            api_version=str(owner.get("apiVersion", "")),
            kind=str(owner.get("kind", "")),
            name=str(owner.get("name", "")),
        )
        for owner in owners
        if isinstance(owner, Mapping)
    ]


def condition_status(
    obj: Mapping[str, Any], outcomes: Mapping[str, str], *, started_key: str = "startTime"
) -> RunStatus:
    """The :class:`RunStatus` of a kind that reports its end as a true condition:
    ``outcomes`` maps the condition types to ``Complete``/``Failed``; the end is the status's
    ``completionTime`` on success when it has one, else the condition's last transition."""
    status = mapping(obj.get("status"))
    conditions = status.get("conditions")
    for entry in conditions if isinstance(conditions, list) else []:
        condition = mapping(entry)
        outcome = outcomes.get(str(condition.get("type")))
        if outcome is not None and condition.get("status") == "True":
            completed = status.get("completionTime") if outcome == "Complete" else None
            return RunStatus(
                status.get(started_key),
                completed or condition.get("lastTransitionTime"),
                outcome,
            )
    return RunStatus(status.get(started_key))


def is_suspended(workload: Workload, obj: Mapping[str, Any]) -> bool:
    """True when the workload's suspend flag is exactly ``true``."""
    node: object = obj
    for key in workload.suspend_path:
        node = mapping(node).get(key)
    return node is True


def suspend_value(workload: Workload, obj: Mapping[str, Any]) -> tuple[bool, object]:
    """Whether the suspend flag is present, and its value (None when absent)."""
    node: Mapping[str, Any] = obj
    *parents, leaf = workload.suspend_path
    for key in parents:
        node = mapping(node.get(key))
    return leaf in node, node.get(leaf)


def set_suspend(workload: Workload, value: bool) -> dict[str, Any]:
    """A merge-patch fragment setting the suspend flag (``{"spec": {"suspend": value}}``)."""
    patch: dict[str, Any] = {workload.suspend_path[-1]: value}
    for key in reversed(workload.suspend_path[:-1]):
        patch = {key: patch}
    return patch


def suspend_diff(
    workload: Workload, obj: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The parts of ``obj`` before and after setting its suspend flag to ``true``, at map
    granularity, for a JSONPatch derived from their diff; None when it is already ``true``.

    Each level of the path that exists as a map in ``obj`` appears in *before* with only the
    member on the path, so the diff adds exactly the missing member (RFC 6902 ``add``) and
    leaves every sibling as it was."""
    if is_suspended(workload, obj):
        return None
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    node: object = obj
    before_level: dict[str, Any] | None = before
    after_level = after
    *parents, leaf = workload.suspend_path
    for key in parents:
        child = mapping(node).get(key) if isinstance(node, Mapping) else None
        present = isinstance(child, Mapping)
        if before_level is not None and present:
            before_level[key] = {}
            before_level = before_level[key]
        else:
            before_level = None
        after_level[key] = {}
        after_level = after_level[key]
        node = child
    if before_level is not None and isinstance(node, Mapping) and leaf in node:
        before_level[leaf] = node[leaf]
    after_level[leaf] = True
    return before, after
