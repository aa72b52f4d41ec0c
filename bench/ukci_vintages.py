"""Turn recorded UK Carbon Intensity forecast answers into a forecast-vintages file.

    .venv/bin/python bench/ukci_vintages.py ANSWER.json[@ISSUED_AT] ... > vintages.csv

Each answer (a national ``intensity/{from}/fw48h`` / ``fw24h`` body or a regional ``fw48h``
body, as saved from the API) becomes one vintage. The API's answers carry no issue time: it is
``@ISSUED_AT`` (ISO 8601, UTC) where given, else the start of the answer's first period (the
API answers from the half hour in force when asked). Rows are written sorted by issue time, in
the format ``webhook/core/datafiles.py`` documents (``issued_at,target_time,value``); the file
is then loaded back, so a converted file that the product would refuse is never written.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from webhook.carbon.base import ProviderError
from webhook.carbon.ukci import forecast_periods
from webhook.core.datafiles import VINTAGE_COLUMNS, load_vintage_file
from webhook.core.series import from_epoch


def _iso(moment: int) -> str:
    return from_epoch(moment).strftime("%Y-%m-%dT%H:%MZ")


def _issued_at(text: str) -> int:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"issue time {text!r} has no time zone (write it with Z or +00:00)")
    return int(moment.timestamp())


def convert(answers: list[tuple[Path, int | None]]) -> str:
    """The vintages file for ``answers`` (path, issue time or None), as CSV text."""
    rows: list[tuple[int, int, float]] = []
    for path, issued in answers:
        periods = forecast_periods(json.loads(path.read_text(encoding="utf-8")))
        if not periods:
            raise ValueError(f"{path}: no period with a forecast")
        at = issued if issued is not None else periods[0][0]
        rows.extend((at, start, value) for start, _, value in periods)
    rows.sort()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(VINTAGE_COLUMNS)
    writer.writerows((_iso(at), _iso(target), f"{value:g}") for at, target, value in rows)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("answers", nargs="+", help="ANSWER.json or ANSWER.json@ISSUED_AT")
    args = parser.parse_args()
    answers: list[tuple[Path, int | None]] = []
    try:
        for item in args.answers:
            name, _, issued = item.partition("@")
            answers.append((Path(name), _issued_at(issued) if issued else None))
        text = convert(answers)
        with tempfile.TemporaryDirectory() as scratch:
            check = Path(scratch) / "vintages.csv"
            check.write_text(text, encoding="utf-8")
            load_vintage_file(check)
    except (OSError, ValueError, ProviderError) as error:
        print(f"ukci_vintages: error: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
