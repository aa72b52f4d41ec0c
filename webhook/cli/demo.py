"""``greenlight demo``: greenlight on its embedded defaults, end to end, on this machine.

Starts a local control plane (etcd, kube-apiserver, the Job controller, the scheduler and kwok
with a fake RTX 3090 node; built from source on first use), the webhook (``greenlight serve``:
replay provider, certificates signed by the local cluster's CA) registered with the apiserver
exactly as the Helm chart registers it, and the reconciler (``greenlight reconcile``). Then it
opts a namespace in and submits the published experiment's four daily training Jobs, and shows
what greenlight decided, with the URLs to curl. Runs until Ctrl-C (or ``--exit``).

With the workload controllers built (hack/build-controllers.sh; ``make run`` builds them) it also
runs the JobSet controller and the Kueue manager, submits the experiment as a JobSet (one gang,
one decision) and as a Job queued through Kueue (held by greenlight's AdmissionCheck), and
shows both next to the plain Jobs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webhook.devtools.localcluster import LocalControlPlane


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run greenlight end to end on a local control plane with the experiment's Jobs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--exit",
        action="store_true",
        help="tear everything down after showing the decisions (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where certificates and logs go (default: a temporary directory, removed at exit)",
    )
    parser.add_argument("--port", type=int, default=0, help="webhook HTTPS port (default: free)")
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="reconciler metrics port (default: free)"
    )
    parser.set_defaults(func=run)


def _say(message: str) -> None:
    print(message, flush=True)


@contextlib.contextmanager
def _process(
    name: str, args: list[str], env: Mapping[str, str], log_dir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A greenlight sub-process with its output in ``log_dir/<name>.log``, stopped on exit."""
    log: IO[bytes] = (log_dir / f"{name}.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "webhook", *args],
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, verify: str | bool, timeout_s: float
) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{url} never came up: the process exited ({process.returncode}); "
                f"last lines of {log}:\n{_tail(log)}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, verify=verify, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(
        f"{url} not ready after {timeout_s:.0f} s; last lines of {log}:\n{_tail(log)}"
    )


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def _apply(plane: LocalControlPlane, manifest: Mapping[str, object], *extra: str) -> str:
    return plane.kubectl("apply", "-f", "-", *extra, stdin=json.dumps(manifest)).stdout


def _wait_for_mutation(plane: LocalControlPlane, job: Mapping[str, object]) -> None:
    """Configuration changes take a moment to reach the apiserver's admission chain: dry-run
    a Job until greenlight's decision shows on it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = plane.kubectl(
            "create", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(job)
        ).stdout
        if "greenlight.dev/decision" in answer:
            return
        time.sleep(0.5)
    raise RuntimeError("the webhook registration did not take effect within 60 s")


def _show(plane: LocalControlPlane, *, jobsets: bool, kueue: bool) -> None:
    from webhook.devtools import demo_jobs as demo

    own = "!jobset.sigs.k8s.io/jobset-name"  # the JobSet's child Jobs are its own business
    _say(
        plane.kubectl(
            "get", "jobs", "-n", demo.NAMESPACE, "-l", own,
            "-o", f"custom-columns={demo.custom_columns()}",
        ).stdout
    )  # fmt: skip
    reasons = plane.kubectl(
        "get",
        "jobs",
        "-n",
        demo.NAMESPACE,
        "-l",
        own,
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}: "
        "{.metadata.annotations.greenlight\\.dev/reason}{'\\n'}{end}",
    ).stdout
    _say(reasons)
    if jobsets:
        _say("JobSets (one gang, one decision; its child Jobs wait with it):")
        _say(
            plane.kubectl(
                "get", "jobsets", "-n", demo.NAMESPACE,
                "-o", f"custom-columns={demo.jobset_columns()}",
            ).stdout
        )  # fmt: skip
    if kueue:
        _say("Kueue Workloads (greenlight's AdmissionCheck holds them until their window):")
        _say(_held_workloads(plane))


def _held_workloads(plane: LocalControlPlane, timeout_s: float = 30.0) -> str:
    """The Kueue Workloads and greenlight's check on each, once the check has said something."""
    from webhook.devtools import demo_jobs as demo

    columns = (
        "NAME:.metadata.name,OWNER:.metadata.ownerReferences[0].name,"
        "CHECK:.status.admissionChecks[0].state,MESSAGE:.status.admissionChecks[0].message"
    )
    deadline = time.monotonic() + timeout_s
    while True:
        table = plane.kubectl(
            "get", "workloads.kueue.x-k8s.io", "-n", demo.NAMESPACE, "-o",
            f"custom-columns={columns}",
        ).stdout  # fmt: skip
        if "greenlight" in table or time.monotonic() > deadline:
            return table
        time.sleep(1)


def run(args: argparse.Namespace) -> int:
    from webhook.devtools import demo_jobs as demo
    from webhook.devtools.localcluster import (
        ADMIN_USER,
        DEFAULT_NODES,
        ControlPlaneError,
        LocalClusterSettings,
        LocalControlPlane,
        free_port,
    )

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with contextlib.ExitStack() as stack:
        workdir = args.workdir
        if workdir is None:
            workdir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="greenlight-demo-"))
            )
        workdir.mkdir(parents=True, exist_ok=True)
        cert_dir = workdir / "certs"
        try:
            _say("starting a local control plane (the first run builds it from source) ...")
            plane = stack.enter_context(LocalControlPlane(LocalClusterSettings()))
            plane.start_workloads((*DEFAULT_NODES, demo.GPU_NODE))
            jobsets, kueue = _start_controllers(stack, plane, workdir)
        except ControlPlaneError as error:
            print(f"greenlight demo: error: {error}", file=sys.stderr)
            return 1
        ca_bundle = plane.issue_serving_certs(cert_dir)
        port = args.port or free_port()
        metrics_port = args.metrics_port or free_port()
        env = {
            **os.environ,
            **plane.environ(),
            # The demo's reconciler talks to the apiserver as the local admin.
            "GREENLIGHT_WEBHOOK__TRUSTED_USERNAMES": json.dumps(
                ["system:serviceaccount:greenlight:greenlight", ADMIN_USER]
            ),
            # Signed decisions, as the chart deploys them: webhook and reconciler share a key.
            "GREENLIGHT_PROVENANCE__KEYS_FILE": str(plane.signing_keys_file()),
            "GREENLIGHT_KUEUE__ADMISSION_CHECK_ENABLED": "true" if kueue else "false",
        }
        kubeconfig = str(plane.kubeconfig)
        try:
            _say(f"starting the webhook on https://127.0.0.1:{port} (replay provider) ...")
            webhook = stack.enter_context(
                _process(
                    "webhook",
                    [
                        "serve",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--cert-dir",
                        str(cert_dir),
                        "--kubeconfig",
                        kubeconfig,
                    ],
                    env,
                    workdir,
                )
            )
            _wait_ready(
                f"https://127.0.0.1:{port}/readyz",
                webhook,
                workdir / "webhook.log",
                str(cert_dir / "ca.crt"),
                120,
            )
            plane.register_host_webhook(f"https://127.0.0.1:{port}", ca_bundle)
            plane.kubectl("create", "namespace", "greenlight")
            _say("starting the reconciler ...")
            reconciler = stack.enter_context(
                _process(
                    "reconciler",
                    [
                        "reconcile",
                        "--kubeconfig",
                        kubeconfig,
                        "--metrics-host",
                        "127.0.0.1",
                        "--metrics-port",
                        str(metrics_port),
                    ],
                    env,
                    workdir,
                )
            )
            _wait_ready(
                f"http://127.0.0.1:{metrics_port}/readyz",
                reconciler,
                workdir / "reconciler.log",
                False,
                120,
            )
            _submit(plane, jobsets=jobsets, kueue=kueue)
        except (RuntimeError, ControlPlaneError) as error:
            print(f"greenlight demo: error: {error}", file=sys.stderr)
            return 1

        _say(f"\nnamespace {demo.NAMESPACE} (label greenlight.dev/enabled=true, zone {demo.ZONE}):")
        _show(plane, jobsets=jobsets, kueue=kueue)
        if not jobsets:
            _say(
                "(JobSet and Kueue parts left out: their controllers are not built; "
                "hack/build-controllers.sh builds them, and make run does)"
            )
        _say(
            "\nTry it:\n"
            f"  export KUBECONFIG={kubeconfig}\n"
            f"  {plane.bin_dir / 'kubectl'} get jobs -n {demo.NAMESPACE} "
            f"-o custom-columns='{demo.custom_columns()}'\n"
            f"  curl --cacert {cert_dir / 'ca.crt'} https://127.0.0.1:{port}/healthz\n"
            f"  curl --cacert {cert_dir / 'ca.crt'} https://127.0.0.1:{port}/metrics\n"
            f"  curl http://127.0.0.1:{metrics_port}/metrics      # the reconciler\n"
            f"  greenlight report --kubeconfig {kubeconfig} --namespace {demo.NAMESPACE}\n"
            f"Logs: {workdir}/webhook.log, {workdir}/reconciler.log. "
            "Carbon data: Electricity Maps (ODbL), replayed."
        )
        if args.exit:
            return 0
        _say("\nRunning; Ctrl-C stops everything.")
        stop.wait()
        _say("stopping ...")
    return 0


def _start_controllers(
    stack: contextlib.ExitStack, plane: LocalControlPlane, workdir: Path
) -> tuple[bool, bool]:
    """The JobSet controller and the Kueue manager when they are built: (jobsets, kueue)."""
    from kubernetes import config

    from webhook.devtools.controllers import CONTROLLERS, jobset_controller, kueue_manager

    if not (CONTROLLERS / "jobset").exists():
        return False, False
    loader: Any = config
    api = loader.new_client_from_config(str(plane.kubeconfig))
    stack.callback(api.close)
    _say("starting the JobSet controller ...")
    stack.enter_context(jobset_controller(plane, api, workdir / "jobset"))
    if not (CONTROLLERS / "kueue").exists():
        return True, False
    _say("starting the Kueue manager ...")
    stack.enter_context(kueue_manager(plane, api, workdir / "kueue"))
    return True, True


def _submit(plane: LocalControlPlane, *, jobsets: bool, kueue: bool) -> None:
    """Opt the demo namespace in and submit its workloads, once the webhook takes effect."""
    from webhook.devtools import demo_jobs as demo

    _apply(plane, demo.namespace_manifest())
    jobs = demo.demo_jobs()
    _wait_for_mutation(plane, jobs[0])
    for job in jobs:
        _apply(plane, job)
    if jobsets:
        _apply(plane, demo.training_jobset(), "--server-side")
    if kueue:
        for obj in demo.kueue_objects():
            _apply(plane, obj, "--server-side")
        _apply(plane, demo.queued_training_job())
