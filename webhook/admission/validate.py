"""Validation of greenlight's annotations on Job CREATE and UPDATE (a pure function).

Every problem is collected and reported in one message: each bad input key with its value and
the accepted form, each unknown ``greenlight.dev/`` key, and each of greenlight's own output
annotations that someone other than greenlight tried to change. Users keep control of
``spec.suspend``: setting it to false releases a deferred Job early, and is never refused here.

On UPDATE only keys whose value changes are checked, so an annotation that predates the webhook
never blocks unrelated updates (the garbage collector's, for one). On CREATE, output keys are
allowed when they carry a valid signature (the mutating webhook has just written and signed
them in the same request); with signing keys configured, output keys a user wrote without one
are refused, each named.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from webhook.admission.review import AdmissionRequest, AdmissionResponse
from webhook.core import annotations as keys
from webhook.core.provenance import SigningKeys
from webhook.workloads.ownership import job_annotations

INVALID_CODE = 422


class GpuModels(Protocol):
    """The GPU catalog (``webhook.core.energy.GpuCatalog``): resolves names, lists models."""

    @property
    def names(self) -> tuple[str, ...]: ...

    def match(self, name: str) -> object | None: ...


def _changed(new: Mapping[str, Any], old: Mapping[str, Any]) -> set[str]:
    return {k for k in new.keys() | old.keys() if new.get(k) != old.get(k)}


def annotation_problems(
    request: AdmissionRequest,
    trusted_usernames: Collection[str],
    gpu_models: GpuModels | None = None,
    signing_keys: SigningKeys | None = None,
) -> list[str]:
    """Every problem with the greenlight annotations of the Job in ``request``; with
    ``gpu_models``, a ``gpu-model`` the catalog cannot resolve is one too."""
    new = job_annotations(request.object)
    is_update = request.operation == "UPDATE"
    old = job_annotations(request.old_object or {}) if is_update else {}
    scope = _changed(new, old) if is_update else set(new)
    trusted = request.username in trusted_usernames
    workload = request.workload
    suspend = ".".join(workload.suspend_path if workload is not None else ("spec", "suspend"))
    kind = workload.gvk.kind if workload is not None else "Job"

    parsed = keys.parse_inputs(new)
    problems = [str(error) for error in parsed.errors if error.key in scope]
    model = parsed.inputs.gpu_model
    if (
        gpu_models is not None
        and model is not None
        and keys.GPU_MODEL in scope
        and gpu_models.match(model) is None
    ):
        problems.append(
            f"{keys.GPU_MODEL}={model!r}: unknown GPU model; expected one of "
            f"{', '.join(gpu_models.names)} (or a name that resolves to one)"
        )
    if not trusted:
        unknown = [k for k in keys.unknown_keys(new) if k in scope]
        problems += [
            f"{k}={new[k]!r}: not a greenlight annotation; inputs are {', '.join(keys.INPUT_KEYS)}"
            for k in unknown
        ]
        if not is_update and signing_keys is not None:
            problems += _unsigned(request, new, unknown, signing_keys)
        if is_update:
            problems += [
                f"{k}: written by greenlight only (from {old.get(k)!r} to {new.get(k)!r}); "
                f"set {suspend} to false to release a deferred {kind} early"
                for k in sorted(scope)
                if keys.is_output_key(k) and k not in unknown
            ]
    return problems


def _unsigned(
    request: AdmissionRequest,
    annotations: Mapping[str, Any],
    unknown: Collection[str],
    signing_keys: SigningKeys,
) -> list[str]:
    """The output keys of a created Job, each a problem, unless greenlight signed them."""
    written = sorted(k for k in annotations if keys.is_output_key(k) and k not in unknown)
    if not written:
        return []
    metadata = request.object.get("metadata")
    # The object's namespace may be unset at admission: the request names it.
    identity = {**(metadata if isinstance(metadata, Mapping) else {})}
    identity["namespace"] = request.namespace
    problem = signing_keys.problem(identity)
    if problem is None:
        return []
    return [
        f"{k}: written by greenlight only, and not signed by it ({problem}); "
        "remove it (greenlight judges the Job and writes its own)"
        for k in written
    ]


def validate(
    request: AdmissionRequest,
    trusted_usernames: Collection[str],
    gpu_models: GpuModels | None = None,
    signing_keys: SigningKeys | None = None,
) -> AdmissionResponse:
    """Allow, or deny with one message listing every problem."""
    if request.workload is None or request.operation not in {"CREATE", "UPDATE"}:
        return AdmissionResponse(uid=request.uid, allowed=True)
    problems = annotation_problems(request, trusted_usernames, gpu_models, signing_keys)
    if not problems:
        return AdmissionResponse(uid=request.uid, allowed=True)
    noun = "problem" if len(problems) == 1 else "problems"
    return AdmissionResponse(
        uid=request.uid,
        allowed=False,
        code=INVALID_CODE,
        message=f"greenlight: {len(problems)} {noun} with annotations: " + "; ".join(problems),
    )
