"""The CLI's logging set-up, shared by `greenlight serve` and the admission benchmark."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from webhook.cli import configure_logging


@pytest.fixture
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.logThreads, logging.logProcesses)
    saved_srcfile = logging._srcfile
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.logThreads, logging.logProcesses = saved[2], saved[3]
    logging._srcfile = saved_srcfile


@pytest.mark.usefixtures("clean_logging")
def test_one_timestamped_line_per_record_without_caller_lookup() -> None:
    logging.getLogger().handlers.clear()  # pytest's capture handlers; restored by the fixture
    configure_logging(logging.INFO)
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)

    logging.getLogger("webhook.mutate").info("deferred %s/%s", "ml", "train")
    logging.getLogger("webhook.mutate").debug("not shown at INFO")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO webhook.mutate deferred ml/train", lines[0]
    )
    record = logging.getLogger().makeRecord("x", logging.INFO, "f", 1, "m", (), None)
    assert record.threadName is None
    assert record.processName is None
    assert logging.getLogger("httpx").level == logging.WARNING
