"""The runtime image installs greenlight without its extras and without webhook.devtools: every
module it ships must import, and `serve`/`reconcile` must start, with those missing.

A child interpreter hides the extras' packages (and the dev harness) behind an import hook, as
if they were not installed; the same interpreter otherwise, so the test needs no second venv.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap

import pytest

import webhook
from webhook.carbon.replay import EMBEDDED_DIR

EMBEDDED_DE = EMBEDDED_DIR / "DE.csv"

ABSENT_IN_IMAGE = ("matplotlib", "rich", "webhook.devtools", "webhook.sim")
"""Not in the runtime image: the extras' libraries (pyproject ``sim``), the dev harness (left
out by .dockerignore) and the simulator (which needs the ``sim`` extra)."""

_CHILD = textwrap.dedent(
    """
    import importlib, importlib.abc, json, sys

    ABSENT = tuple(json.loads(sys.argv[1]))

    class Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == a or name.startswith(a + ".") for a in ABSENT):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Absent())
    for name in json.loads(sys.argv[2]):
        importlib.import_module(name)
    loaded = sorted(m for m in sys.modules if any(m == a or m.startswith(a + ".") for a in ABSENT))
    print(json.dumps(loaded))
    if len(sys.argv) > 3:
        from webhook.cli.main import main
        sys.exit(main(json.loads(sys.argv[3])))
    """
)


def _runtime_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(webhook.__path__, "webhook."):
        if info.name.endswith("__main__") or info.name.startswith(ABSENT_IN_IMAGE):
            continue
        names.append(info.name)
    return sorted(names)


def _run_child(
    modules: list[str], argv: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-c", _CHILD, json.dumps(ABSENT_IN_IMAGE), json.dumps(modules)]
    if argv is not None:
        args.append(json.dumps(argv))
    return subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)


def test_every_runtime_module_imports_without_the_extras() -> None:
    modules = _runtime_modules()
    assert "webhook.admission.server" in modules
    assert "webhook.reconciler.controller" in modules
    completed = _run_child(modules)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.splitlines()[0]) == []


@pytest.mark.parametrize("command", ["serve", "reconcile", "forecast", "report", "release-all"])
def test_runtime_commands_start_without_the_extras(command: str) -> None:
    completed = _run_child([], ["--log-level", "WARNING", command, "--help"])
    assert completed.returncode == 0, completed.stderr
    assert "usage: greenlight" in completed.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(
            ["simulate", "--carbon", str(EMBEDDED_DE)],
            "pip install 'greenlight[sim]'",
            id="simulate-needs-sim",
        ),
        pytest.param(["demo"], "development tool, not installed", id="demo-needs-a-checkout"),
    ],
)
def test_a_command_whose_extra_is_missing_says_what_to_install(
    argv: list[str], expected: str
) -> None:
    completed = _run_child([], argv)
    assert completed.returncode == 2, completed.stderr
    assert expected in completed.stderr
