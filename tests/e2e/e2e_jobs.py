"""Jobs the end-to-end tests create, as plain data."""

from __future__ import annotations

from typing import Any


def plain_job(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A one-container CPU Job (busybox, 2 CPU, 4 Gi) with ``annotations`` and extra ``spec``."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            **spec,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": "2", "memory": "4Gi"}},
                        }
                    ],
                }
            },
        },
    }
