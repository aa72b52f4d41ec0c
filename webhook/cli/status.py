"""``greenlight status``: the deferred Jobs still waiting, per namespace, at a glance.

For each suspended Job greenlight deferred and has not released yet: when it is planned to
start (release-at), why it was deferred, the saving expected, the latest start that still meets
its max-delay or deadline (release-by) and its own deadline where it set one. A Job whose
release-at has passed is marked OVERDUE (the reconciler is down, not leading, or behind).
Read from the Jobs' annotations in the cluster, as ``kubectl describe job`` shows them one by one.
"""

from __future__ import annotations

import argparse

FORMATS = ("table", "json")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="the deferred Jobs waiting per namespace: release time, reason, saving, deadline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--namespace", "-n", help="only this namespace (default: all)")
    parser.add_argument(
        "--output", "-o", choices=FORMATS, default="table", help="output format (default: table)"
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
        WaitingRow,
        render_waiting,
        sort_waiting,
        waiting_row,
        waiting_summary,
    )

    now = datetime.now(UTC)
    rows: list[WaitingRow] = []
    try:
        kube = Kube.connect(args.kubeconfig)
        try:
            for workload in load_settings().workloads.workloads:
                try:
                    objects = kube.all_objects(workload, namespace=args.namespace)
                except NotFoundError:
                    continue  # the kind's CRD is not installed: nothing of it waits
                rows.extend(row for item in objects if (row := waiting_row(item, now, workload)))
        finally:
            kube.close()
    except KubeError as e:
        print(f"greenlight status: {e}", file=sys.stderr)
        return 1
    chosen = sort_waiting(rows)
    sys.stdout.write(render_waiting(chosen, waiting_summary(chosen), args.output, now))
    return 0
