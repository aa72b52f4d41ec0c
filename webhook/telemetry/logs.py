"""Log configuration of every greenlight process: one line per record on stderr."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: int | str) -> None:
    """One line per record on stderr with a timestamp. Records skip what the format never
    shows — the caller's frame, thread, process and task names — as the logging HOWTO's
    "Optimization" section suggests: the webhook logs one line per admission decision."""
    logging._srcfile = None  # the documented switch for "no caller lookup"
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if hasattr(logging, "logAsyncioTasks"):  # Python >= 3.12
        logging.logAsyncioTasks = False
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "kubernetes", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
