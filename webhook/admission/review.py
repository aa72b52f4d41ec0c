"""AdmissionReview ``admission.k8s.io/v1``: decoding requests, encoding responses, JSONPatch.

The HTTP edge calls :func:`decode_review` and maps :class:`MalformedReviewError` to HTTP 400;
what is wrong with a well-formed review's *object* is an ``allowed: false`` response, never an
HTTP error. Patches are derived from a diff of the object before and after greenlight's change
(``jsonpatch`` is imported here only); an empty diff means no patch.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import orjson

from webhook.workloads.base import GroupVersionKind, Workload
from webhook.workloads.kinds import workload_for

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
MAX_BODY_BYTES = 3 * 1024 * 1024
"""The apiserver caps an AdmissionReview at 3 MiB; anything larger is not from it."""

JsonObject = dict[str, Any]
PatchOp = dict[str, Any]


class MalformedReviewError(ValueError):
    """A request body that is not an AdmissionReview v1 (HTTP 400, with this message)."""


@dataclass(frozen=True)
class AdmissionRequest:
    """The parts of ``AdmissionReview.request`` greenlight uses."""

    uid: str
    kind: GroupVersionKind
    operation: str
    namespace: str
    name: str
    object: JsonObject
    old_object: JsonObject | None = None
    dry_run: bool = False
    username: str = ""
    sub_resource: str = ""

    @property
    def workload(self) -> Workload | None:
        """The workload kind of the object (a Job, JobSet ...), or None for any other kind
        and for subresources."""
        return None if self.sub_resource else workload_for(self.kind)


@dataclass(frozen=True)
class AdmissionResponse:
    uid: str
    allowed: bool
    patch: Sequence[PatchOp] = ()
    message: str | None = None
    code: int | None = None
    warnings: Sequence[str] = field(default_factory=tuple)


def decode_review(body: bytes) -> AdmissionRequest:
    """The request of an AdmissionReview v1 body; :class:`MalformedReviewError` says why not."""
    if len(body) > MAX_BODY_BYTES:
        raise MalformedReviewError(
            f"request body of {len(body)} bytes is over the {MAX_BODY_BYTES}-byte limit"
        )
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise MalformedReviewError(f"request body is not JSON: {e}") from e
    if not isinstance(review, dict):
        raise MalformedReviewError(
            f"request body must be a JSON object, not {type(review).__name__}"
        )
    api_version = review.get("apiVersion")
    kind = review.get("kind")
    if api_version != API_VERSION or kind != KIND:
        raise MalformedReviewError(
            f"expected apiVersion {API_VERSION!r} and kind {KIND!r}, "
            f"got apiVersion {api_version!r} and kind {kind!r}"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise MalformedReviewError("AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise MalformedReviewError("AdmissionReview request has no uid")
    operation = request.get("operation")
    if not isinstance(operation, str) or not operation:
        raise MalformedReviewError("AdmissionReview request has no operation")
    obj = request.get("object")
    old_obj = request.get("oldObject")
    if operation == "DELETE" and obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise MalformedReviewError("AdmissionReview request has no object")
    if old_obj is not None and not isinstance(old_obj, dict):
        raise MalformedReviewError("AdmissionReview request oldObject must be an object or null")
    gvk = request.get("kind")
    gvk = gvk if isinstance(gvk, dict) else {}
    user = request.get("userInfo")
    user = user if isinstance(user, dict) else {}
    return AdmissionRequest(
        uid=uid,
        kind=GroupVersionKind(
            _text(gvk.get("group")), _text(gvk.get("version")), _text(gvk.get("kind"))
        ),
        operation=operation,
        namespace=_text(request.get("namespace")),
        name=_text(request.get("name")) or _object_name(obj),
        object=obj,
        old_object=old_obj,
        dry_run=request.get("dryRun") is True,
        username=_text(user.get("username")),
        sub_resource=_text(request.get("subResource")),
    )


def encode_response(response: AdmissionResponse) -> bytes:
    """The AdmissionReview v1 JSON body answering a request."""
    body: JsonObject = {"uid": response.uid, "allowed": response.allowed}
    if response.patch:
        body["patchType"] = "JSONPatch"
        body["patch"] = base64.b64encode(orjson.dumps(list(response.patch))).decode("ascii")
    if response.message is not None or response.code is not None:
        status: JsonObject = {}
        if response.code is not None:
            status["code"] = response.code
        if response.message is not None:
            status["message"] = response.message
        body["status"] = status
    if response.warnings:
        body["warnings"] = list(response.warnings)
    return orjson.dumps({"apiVersion": API_VERSION, "kind": KIND, "response": body})


def diff_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[PatchOp]:
    """The JSONPatch (RFC 6902) that turns ``before`` into ``after``; [] when they are equal.

    Objects are compared member by member (``add``, ``replace``, ``remove``); anything else
    that differs is replaced whole. This is the admission hot path: ``jsonpatch.make_patch``
    costs ~55 µs here (it deep-copies both documents through JSON and searches for moves),
    this ~3 µs; ``apply_patch`` (jsonpatch) is the reference it is tested against.
    """
    ops: list[PatchOp] = []
    _diff_into(ops, "", before, after)
    return ops


def _pointer_token(key: str) -> str:
    if "~" not in key and "/" not in key:  # most keys: nothing to escape
        return key
    return key.replace("~", "~0").replace("/", "~1")  # RFC 6901


def _diff_into(ops: list[PatchOp], path: str, before: Any, after: Any) -> None:
    if _is_object(before) and _is_object(after):
        for key in before:
            if key not in after:
                ops.append({"op": "remove", "path": f"{path}/{_pointer_token(key)}"})
        for key, value in after.items():
            member = f"{path}/{_pointer_token(key)}"
            if key not in before:
                ops.append({"op": "add", "path": member, "value": value})
            elif before[key] != value:
                _diff_into(ops, member, before[key], value)
        return
    if before != after:
        ops.append({"op": "replace", "path": path, "value": after})


def _is_object(value: object) -> bool:
    # dict first: JSON objects are dicts, and the abstract-class check is several times slower
    return type(value) is dict or isinstance(value, Mapping)


def apply_patch(document: Mapping[str, Any], ops: Sequence[PatchOp]) -> JsonObject:
    """``document`` with ``ops`` applied (a new object): what the apiserver will store."""
    result: JsonObject = jsonpatch.apply_patch(dict(document), list(ops), in_place=False)
    return result


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _object_name(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return ""
    return _text(metadata.get("name")) or _text(metadata.get("generateName"))
