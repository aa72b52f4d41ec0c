"""The ``greenlight`` command line: one sub-command per module in ``webhook.cli``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Protocol

from webhook import __version__


class Command(Protocol):
    """What each ``webhook.cli.<name>`` module provides."""

    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        """Add the sub-command's parser and set ``func`` to its entry point."""


# Module names under webhook.cli, in the order `greenlight --help` lists them.
COMMANDS: tuple[str, ...] = (
    "demo",
    "simulate",
    "certs",
    "profile_gpu",
    "forecast",
    "serve",
    "bench",
    "bootstrap_certs",
    "release_all",
    "reconcile",
    "report",
    "status",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="greenlight",
        description="Carbon-aware admission for Kubernetes Jobs.",
    )
    parser.add_argument("--version", action="version", version=f"greenlight {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default: INFO)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module: Command = importlib.import_module(f"webhook.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    code: int = args.func(args)
    return code


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
