"""Proof that greenlight wrote a Job's decision: an HMAC-SHA256 signature over it (pure).

Anyone who can create a Job can write ``greenlight.dev/*`` annotations on it. The mutating
webhook therefore signs what it decides: ``greenlight.dev/signature`` is an HMAC, with a key
only greenlight holds (a Secret), over a canonical serialisation of

- the Job's namespace and its name as admission saw it: ``metadata.name``, or
  ``metadata.generateName`` when the name was not set yet (the apiserver generates it after
  mutating admission, so admission sees only the prefix);
- every signed greenlight annotation present (:data:`SIGNED_KEYS`: the webhook's plan, the
  AdmissionReview request uid it was made in, and the reconciler's re-plan keys).

The reconciler acts only on Jobs whose signature verifies (constant-time compare) and signs
again when a re-plan moves the release. Key rotation: several keys, the first signs and each
verifies. See docs/security.md for what this does and does not protect.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webhook.core import annotations as keys

SIGNATURE = keys.SIGNATURE
ADMISSION_UID = keys.ADMISSION_UID
_VERSION = "v1"
MIN_KEY_LENGTH = 32

SIGNED_KEYS: frozenset[str] = frozenset(
    {*keys.WEBHOOK_OUTPUT_KEYS, keys.REPLANNED_AT, keys.REPLAN_COUNT} - {SIGNATURE}
)
"""Every annotation a signature covers: adding, removing or changing one breaks it."""


class KeyFileError(ValueError):
    """The signing key file is missing, empty or holds a key too short to be one."""


def _canonical(namespace: str, identity: str, annotations: Mapping[str, str]) -> bytes:
    signed = sorted((k, v) for k, v in annotations.items() if k in SIGNED_KEYS)
    return json.dumps(
        [_VERSION, namespace, identity, signed], ensure_ascii=True, separators=(",", ":")
    ).encode()


def _digest(key: bytes, message: bytes) -> str:
    return f"{_VERSION}:" + hmac.new(key, message, hashlib.sha256).hexdigest()


def _name_identity(name: str) -> str:
    return f"name:{name}"


def _prefix_identity(generate_name: str) -> str:
    return f"generateName:{generate_name}"


@dataclass(frozen=True)
class SigningKeys:
    """The keys greenlight signs and verifies with: the first signs, every one verifies."""

    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyFileError("no signing key given")
        short = [i for i, key in enumerate(self.keys) if len(key) < MIN_KEY_LENGTH]
        if short:
            raise KeyFileError(f"signing key {short[0] + 1} is shorter than {MIN_KEY_LENGTH} bytes")

    def sign(
        self, namespace: str, name: str, generate_name: str, annotations: Mapping[str, str]
    ) -> str:
        """The signature of a Job's decision (``name`` empty: signed over ``generate_name``)."""
        identity = _name_identity(name) if name else _prefix_identity(generate_name)
        return _digest(self.keys[0], _canonical(namespace, identity, annotations))

    def signed(self, metadata: Mapping[str, Any], annotations: Mapping[str, str]) -> str:
        """The signature for a Job, given its metadata and its (new) annotations."""
        return self.sign(
            _text(metadata.get("namespace")),
            _text(metadata.get("name")),
            _text(metadata.get("generateName")),
            annotations,
        )

    def problem(self, metadata: Mapping[str, Any]) -> str | None:
        """None when the Job's greenlight annotations carry a valid signature; else why not."""
        raw = metadata.get("annotations")
        annotations = raw if isinstance(raw, Mapping) else {}
        given = annotations.get(SIGNATURE)
        if given is None:
            return f"no {SIGNATURE} annotation"
        if not isinstance(given, str) or not given.isascii():
            return f"{SIGNATURE} is not a signature"
        signed = {k: v for k, v in annotations.items() if k in SIGNED_KEYS}
        if any(not isinstance(v, str) for v in signed.values()):
            return "a signed greenlight annotation is not a string"
        if ADMISSION_UID not in signed:
            return f"no {ADMISSION_UID} annotation"
        namespace = _text(metadata.get("namespace"))
        name = _text(metadata.get("name"))
        prefix = _text(metadata.get("generateName"))
        identities = [_name_identity(name)]
        if prefix and name.startswith(prefix):
            identities.append(_prefix_identity(prefix))
        expected = given.encode()
        valid = False
        for identity in identities:
            message = _canonical(namespace, identity, signed)
            for key in self.keys:  # no early exit: the time taken does not say which matched
                valid |= hmac.compare_digest(_digest(key, message).encode(), expected)
        return None if valid else f"{SIGNATURE} does not match the Job's greenlight annotations"


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def load_keys(path: Path) -> SigningKeys:
    """Keys from a file, one a line (the mounted Secret): the first signs, every one verifies.
    Blank lines and surrounding whitespace are ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"signing key file {path}: {e}") from e
    lines = [line.strip() for line in text.splitlines()]
    try:
        return SigningKeys(tuple(line.encode() for line in lines if line))
    except KeyFileError as e:
        raise KeyFileError(f"signing key file {path}: {e}") from e
