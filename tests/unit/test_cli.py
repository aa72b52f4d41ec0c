"""The CLI's logging set-up, shared by `greenlight serve` and the admission benchmark."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from webhook.telemetry.logs import configure_logging

QUIET = ("httpx", "httpcore", "kubernetes", "urllib3", "matplotlib")


@pytest.fixture
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    switches = {
        name: getattr(logging, name)
        for name in (
            "_srcfile",
            "logThreads",
            "logProcesses",
            "logMultiprocessing",
            "logAsyncioTasks",
        )
        if hasattr(logging, name)
    }
    quiet = {name: logging.getLogger(name).level for name in QUIET}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in switches.items():
        setattr(logging, name, value)
    for name, saved in quiet.items():
        logging.getLogger(name).setLevel(saved)


@pytest.mark.usefixtures("clean_logging")
def test_one_timestamped_line_per_record_without_caller_lookup() -> None:
    logging.getLogger().handlers.clear()  # pytest's capture handlers; restored by the fixture
    configure_logging(logging.INFO)
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)

    logging.getLogger("webhook.admission.mutate").info("deferred %s/%s", "ml", "train")
    logging.getLogger("webhook.admission.mutate").debug("not shown at INFO")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO webhook.admission.mutate deferred ml/train",
        lines[0],
    )
    record = logging.getLogger().makeRecord("x", logging.INFO, "f", 1, "m", (), None)
    assert record.threadName is None
    assert record.processName is None
    assert logging.getLogger("httpx").level == logging.WARNING
