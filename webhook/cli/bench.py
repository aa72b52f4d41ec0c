"""``greenlight bench``: benchmarks, one sub-command each (``bench admission``; more to come).

``bench admission`` starts its own webhook on the embedded defaults in a separate process (or
drives a running one given ``--url``, loopback only) and sends a realistic Job AdmissionReview
over HTTPS keep-alive connections: maximum throughput and latency of ``/mutate``; the same for
``/noop`` — an admission route on the same stack (TLS, uvicorn, FastAPI, decode, metrics, encode)
whose handler just allows — so the ratio is the cost of judging; and latency at a fixed
500 requests/s (open loop, measured from each request's scheduled time).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks (admission, reconcile)")
    benches = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    admission = benches.add_parser(
        "admission",
        help="admission latency and throughput: mutate vs a no-op handler on the same stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    admission.add_argument(
        "--url", help="a running webhook, e.g. https://127.0.0.1:8443 (loopback only)"
    )
    admission.add_argument("--json", action="store_true", help="print the results as JSON")
    admission.add_argument(
        "--seconds", type=float, default=5.0, help="length of each measurement (5)"
    )
    admission.add_argument(
        "--connections", type=int, default=8, help="client connections for max throughput (8)"
    )
    admission.add_argument("--rate", type=float, default=500.0, help="fixed rate, req/s (500)")
    admission.add_argument(
        "--max-requests", type=int, default=100_000, help="cap per measurement (100000)"
    )
    admission.set_defaults(func=run_admission)

    from webhook.cli.reconcile import register_bench

    register_bench(benches)


def realistic_job_review() -> dict[str, Any]:
    """A Job CREATE review as the apiserver sends it: a GPU training Job with managed fields."""
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "resnet-finetune-7f9c2",
            "namespace": "ml-team",
            "uid": "4a1e3f5c-9d2b-4c6e-8f0a-1b2c3d4e5f60",
            "creationTimestamp": None,
            "labels": {"app.kubernetes.io/name": "resnet-finetune", "team": "vision"},
            "annotations": {
                "greenlight.dev/max-delay": "12h",
                "greenlight.dev/expected-duration": "2h",
                "greenlight.dev/workload": "training",
            },
            "managedFields": [
                {
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": "batch/v1",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {"f:annotations": {".": {}}, "f:labels": {".": {}}},
                        "f:spec": {
                            "f:backoffLimit": {},
                            "f:completions": {},
                            "f:parallelism": {},
                            "f:template": {"f:spec": {"f:containers": {}}},
                        },
                    },
                }
            ],
        },
        "spec": {
            "parallelism": 2,
            "completions": 2,
            "backoffLimit": 3,
            "completionMode": "NonIndexed",
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "resnet-finetune"}},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
                    "tolerations": [
                        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "containers": [
                        {
                            "name": "trainer",
                            "image": "registry.example.com/vision/resnet:2.4.1",
                            "command": ["torchrun", "--nproc-per-node=4", "train.py"],
                            "args": ["--epochs=20", "--batch-size=256", "--data=/data/imagenet"],
                            "env": [
                                {"name": "NCCL_DEBUG", "value": "WARN"},
                                {"name": "OMP_NUM_THREADS", "value": "8"},
                            ],
                            "resources": {
                                "requests": {
                                    "cpu": "32",
                                    "memory": "256Gi",
                                    "nvidia.com/gpu": "4",
                                },
                                "limits": {"memory": "256Gi", "nvidia.com/gpu": "4"},
                            },
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": "imagenet"}}
                    ],
                },
            },
        },
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "b1f0c2d4-0000-4000-8000-00000000bench",
            "kind": {"group": "batch", "version": "v1", "kind": "Job"},
            "resource": {"group": "batch", "version": "v1", "resource": "jobs"},
            "requestKind": {"group": "batch", "version": "v1", "kind": "Job"},
            "requestResource": {"group": "batch", "version": "v1", "resource": "jobs"},
            "name": "resnet-finetune-7f9c2",
            "namespace": "ml-team",
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:ci:pipeline",
                "uid": "5c8e2a10-0000-4000-8000-000000000001",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:ci"],
            },
            "object": job,
            "oldObject": None,
            "dryRun": False,
            "options": {
                "apiVersion": "meta.k8s.io/v1",
                "kind": "CreateOptions",
                "fieldManager": "kubectl-client-side-apply",
            },
        },
    }


def serve_for_bench(port: int, cert_dir: Path) -> None:
    """The benchmark's server process: the webhook on embedded defaults, plus ``/noop``."""
    import asyncio
    import logging

    from webhook.admission.review import AdmissionRequest, AdmissionResponse
    from webhook.admission.server import admission_route, create_app, https_server
    from webhook.cli.serve import load_tls
    from webhook.config.settings import ServerSettings, load_settings
    from webhook.telemetry.logs import configure_logging

    # Decisions are logged exactly as in production (one line each), to a sink nobody reads.
    configure_logging(logging.INFO)
    settings = load_settings()
    settings = settings.model_copy(
        update={"server": ServerSettings(host="127.0.0.1", port=port, cert_dir=cert_dir)}
    )
    tls = load_tls(settings)
    app = create_app(settings, tls=tls)

    def allow(request: AdmissionRequest) -> AdmissionResponse:
        return AdmissionResponse(uid=request.uid, allowed=True)

    app.add_api_route("/noop", admission_route("noop", allow, app.state.metrics), methods=["POST"])
    asyncio.run(https_server(app, tls, host="127.0.0.1", port=port).serve())


def run_admission(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from webhook.devtools.loadgen import LoadError

    try:
        results = asyncio.run(_bench_admission(args))
    except (LoadError, OSError, TimeoutError) as e:
        print(f"greenlight bench admission: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{'endpoint':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name in ("noop", "mutate", "mutate_at_500"):
        row = results.get(name)
        if row is None:
            continue
        rps = f"{row['rps']:.0f}" if "rps" in row else f"@{args.rate:g}"
        print(f"{name:<16}{rps:>10}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}")
    if results.get("noop"):
        share = 100 * results["mutate"]["rps"] / results["noop"]["rps"]
        print(f"mutate throughput = {share:.0f}% of the no-op handler's")
    return 0


async def _bench_admission(args: argparse.Namespace) -> dict[str, Any]:
    import contextlib
    import ssl

    import orjson

    from webhook.devtools.loadgen import Target, closed_loop, open_loop, post_request

    # Loopback only, and the certificate is our own or the operator's: no verification needed.
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE

    async with contextlib.AsyncExitStack() as stack:
        url = args.url.rstrip("/") if args.url else _start_server(stack)
        target = Target.from_url(url, tls)
        await _wait_ready(target, url)

        body = orjson.dumps(realistic_job_review())
        mutate = post_request(target.host, "/mutate", body)
        noop = post_request(target.host, "/noop", body)
        has_noop = await _posts_ok(target, noop)
        common = {
            "connections": args.connections,
            "seconds": args.seconds,
            "max_requests": args.max_requests,
        }
        warm = {**common, "seconds": min(1.0, args.seconds)}
        results: dict[str, Any] = {}
        if has_noop:
            await closed_loop(target, noop, **warm)
            results["noop"] = _row(await closed_loop(target, noop, **common))
        await closed_loop(target, mutate, **warm)
        results["mutate"] = _row(await closed_loop(target, mutate, **common))
        at_rate = await open_loop(
            target, mutate, rate=args.rate, seconds=args.seconds, connections=64
        )
        results["mutate_at_500" if args.rate == 500 else f"mutate_at_{args.rate:g}"] = {
            "p50_ms": round(at_rate.percentile_ms(50), 3),
            "p99_ms": round(at_rate.percentile_ms(99), 3),
        }
        if not has_noop:
            results["noop"] = None
        return results


async def _wait_ready(target: Any, url: str) -> None:
    import asyncio
    import time

    from webhook.devtools.loadgen import LoadError, get_status

    deadline = time.monotonic() + 60
    while True:
        try:
            if await get_status(target, "/readyz") == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise LoadError(f"{url} did not become ready within 60 s")
        await asyncio.sleep(0.2)  # polling another process's readiness


def _start_server(stack: Any) -> str:
    """Start the benchmark's own webhook process; its URL (stopped when ``stack`` closes)."""
    import socket
    import subprocess
    import tempfile

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cert_dir = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "certs"
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "webhook.cli.bench", str(port), str(cert_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def stop() -> None:
        process.terminate()
        process.wait(timeout=10)

    stack.callback(stop)
    return f"https://127.0.0.1:{port}"


async def _posts_ok(target: Any, request: bytes) -> bool:
    from webhook.devtools.loadgen import closed_loop

    try:
        await closed_loop(target, request, connections=1, seconds=0.01, max_requests=1)
    except Exception:  # a server without /noop answers 404 (LoadError) or closes
        return False
    return True


def _row(result: Any) -> dict[str, float]:
    return {
        "rps": round(result.rps, 1),
        "p50_ms": round(result.percentile_ms(50), 3),
        "p99_ms": round(result.percentile_ms(99), 3),
    }


if __name__ == "__main__":
    serve_for_bench(int(sys.argv[1]), Path(sys.argv[2]))
