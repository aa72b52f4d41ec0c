"""``greenlight report``: per Job and per namespace, what greenlight decided and what it saved.

For sustainability reporting: the decision, the delay, the emissions estimated at admission
(running now versus as planned), the actual emissions and saving of finished deferred Jobs,
and the cost where a price is configured — read from the Jobs in the cluster (Jobs already
deleted are not in it; the reconciler's per-namespace counters keep those totals).
"""

from __future__ import annotations

import argparse

FORMATS = ("table", "csv", "json")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report",
        help="per Job and per namespace: deferrals, delay, estimated and actual emissions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--namespace", "-n", help="only this namespace (default: all)")
    parser.add_argument(
        "--since",
        help="only Jobs admitted since: an RFC 3339 time, a date (UTC) or a duration back "
        "from now such as 168h",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )
    parser.add_argument(
        "--kubeconfig",
        help="cluster to read (default: in-cluster in a Pod, else $KUBECONFIG or ~/.kube/config)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from datetime import UTC, datetime

    from webhook.config.settings import load_settings
    from webhook.reconciler.kube import Kube, KubeError, NotFoundError
    from webhook.reconciler.report import (
        JobRow,
        ReportError,
        job_row,
        parse_since,
        render,
        select,
        summarize,
    )

    try:
        since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    except ReportError as e:
        print(f"greenlight report: {e}", file=sys.stderr)
        return 2
    rows: list[JobRow] = []
    try:
        kube = Kube.connect(args.kubeconfig)
        try:
            for workload in load_settings().workloads.workloads:
                try:
                    objects = kube.all_objects(workload, namespace=args.namespace)
                except NotFoundError:
                    continue  # the kind's CRD is not installed: nothing of it to report
                rows.extend(row for item in objects if (row := job_row(item, workload)) is not None)
        finally:
            kube.close()
    except KubeError as e:
        print(f"greenlight report: {e}", file=sys.stderr)
        return 1
    chosen = select(rows, namespace=args.namespace, since=since)
    sys.stdout.write(render(chosen, summarize(chosen), args.format))
    return 0
