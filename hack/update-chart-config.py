#!/usr/bin/env python3
"""Write what is generated from greenlight's settings classes (webhook/config/reference.py) into the
chart and the README: the `config:` block of charts/greenlight/values.yaml, the `config`
property and `$defs` of charts/greenlight/values.schema.json, and the README's configuration
reference. `--check` changes nothing and exits 1 when a file is stale (tests run it).

    .venv/bin/python hack/update-chart-config.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webhook.config import reference as configref  # noqa: E402

VALUES = ROOT / "charts" / "greenlight" / "values.yaml"
SCHEMA = ROOT / "charts" / "greenlight" / "values.schema.json"
README = ROOT / "README.md"
VALUES_MARKERS = (
    "# BEGIN generated: config (hack/update-chart-config.py, from the settings classes)\n",
    "# END generated: config\n",
)
README_MARKERS = (
    "<!-- BEGIN generated: configuration reference (hack/update-chart-config.py) -->\n",
    "<!-- END generated: configuration reference -->\n",
)


def replace_between(text: str, markers: tuple[str, str], body: str, path: Path) -> str:
    begin, end = markers
    if begin not in text or end not in text:
        raise SystemExit(f"{path}: the markers {begin.strip()!r} / {end.strip()!r} are missing")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + body + end + tail


def generated() -> dict[Path, str]:
    schema = json.loads(SCHEMA.read_text())
    schema["properties"]["config"] = configref.config_schema()
    schema["$defs"] = configref.schema_definitions()
    return {
        VALUES: replace_between(
            VALUES.read_text(), VALUES_MARKERS, configref.values_block(), VALUES
        ),
        SCHEMA: json.dumps(schema, indent=2, ensure_ascii=False) + "\n",
        README: replace_between(
            README.read_text(), README_MARKERS, configref.reference_markdown(), README
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args()
    stale = [path for path, text in generated().items() if path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is stale: run hack/update-chart-config.py")
        return 1 if stale else 0
    for path, text in generated().items():
        if path in stale:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
