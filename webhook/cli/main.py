"""The ``greenlight`` command line: one sub-command per module in ``webhook.cli``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol

from webhook import __version__
from webhook.telemetry.logs import configure_logging


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
    try:
        code: int = args.func(args)
    except ModuleNotFoundError as e:
        missing = _missing_extra(e.name or "")
        if missing is None:
            raise
        print(f"greenlight {args.command}: {missing}", file=sys.stderr)
        return 2
    return code


EXTRAS: dict[str, str] = {"matplotlib": "sim", "rich": "sim"}
"""Third-party packages of the optional extras (pyproject.toml), by the extra that brings them."""


def _missing_extra(module: str) -> str | None:
    """What to install for a command whose optional part is missing; None for anything else."""
    top = module.partition(".")[0]
    if top in EXTRAS:
        extra = EXTRAS[top]
        return (
            f"needs {top}, from greenlight's optional '{extra}' extra: "
            f"pip install 'greenlight[{extra}]'"
        )
    if module.startswith("webhook.devtools"):
        return (
            "is a development tool, not installed in the runtime image: run it from a source "
            "checkout (make venv, then .venv/bin/greenlight)"
        )
    return None
