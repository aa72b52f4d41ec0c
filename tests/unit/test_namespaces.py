from __future__ import annotations

import logging

import pytest

from webhook.admission.namespaces import NamespaceDefaults, namespace_inputs
from webhook.core import annotations as keys
from webhook.core.annotations import Inputs, Mode


def test_namespace_annotations_map_to_defaults() -> None:
    inputs = namespace_inputs("ml", {keys.MODE: "observe", keys.MAX_DELAY: "6h", "x": "y"})
    assert inputs == Inputs(mode=Mode.OBSERVE, max_delay_s=6 * 3600)


def test_a_bad_namespace_default_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="webhook.admission.namespaces")
    inputs = namespace_inputs("ml", {keys.MODE: "loud", keys.ZONE: "FR"})
    assert inputs == Inputs(zone="FR")
    assert "namespace ml" in caplog.text
    assert keys.MODE in caplog.text


def test_the_store_follows_puts_removals_and_relists() -> None:
    store = NamespaceDefaults()
    assert store.get("ml") == Inputs()
    store.put("ml", {keys.ZONE: "GB"})
    assert store.get("ml").zone == "GB"
    store.put("ml", {})
    assert store.get("ml") == Inputs()
    store.put("ml", {keys.ZONE: "GB"})
    store.remove("ml")
    assert store.get("ml") == Inputs()
    store.put("old", {keys.ZONE: "DE"})
    store.replace_all({"new": {keys.SKIP: "true"}})
    assert (store.get("old"), store.get("new").skip) == (Inputs(), True)
