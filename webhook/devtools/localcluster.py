"""A local Kubernetes control plane from real binaries, for the end-to-end tests and the demo.

``LocalControlPlane`` starts etcd and kube-apiserver on free loopback ports with certificates it
generates (RBAC on, an admin client certificate in O=system:masters), writes an admin
kubeconfig, and on demand starts kube-controller-manager (Job, CronJob, garbage-collector and
namespace controllers), kube-scheduler and kwok with fake nodes — a CPU node and a GPU node — so
Job pods are scheduled, "run" and complete. Everything lives in one temporary directory (data,
certificates, logs) and every process in its own process group; teardown terminates the groups
(SIGTERM, then SIGKILL) and removes the directory, also when the body of the ``with`` raises or
the interpreter exits. The children also get SIGKILL from the kernel if this process dies
without a chance to clean up (``PR_SET_PDEATHSIG``; it fires when the *thread* that started
them exits, so start the plane from a thread that outlives it).

Pure subprocess orchestration: no Kubernetes client library here; fake nodes are created with
kubectl. Binaries come from ``$GREENLIGHT_K8S_BIN`` or ``hack/build-control-plane.sh``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field

from webhook.admission import certs
from webhook.workloads.base import Workload
from webhook.workloads.kinds import WORKLOADS, admission_rules

ENV_BIN_DIR = "GREENLIGHT_K8S_BIN"
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "build-control-plane.sh"
CORE_BINARIES: tuple[str, ...] = ("etcd", "kube-apiserver", "kubectl")
WORKLOAD_BINARIES: tuple[str, ...] = ("kube-controller-manager", "kube-scheduler", "kwok")
DEFAULT_CONTROLLERS: tuple[str, ...] = (
    "job-controller",
    "cronjob-controller",
    "garbage-collector-controller",
    "namespace-controller",
)
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
# Pod IPs kwok hands out, apart from the Service range (kwok's default overlaps it).
KWOK_POD_CIDR = "10.244.0.1/16"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE = "fake"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
ADMIN_USER = "greenlight-admin"
# The namespace label that opts a namespace in (the webhook configurations' namespaceSelector).
OPT_IN_LABEL = "greenlight.dev/enabled"
WEBHOOK_CONFIGURATION_NAME = "greenlight"
_LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
_WORKDIR_PREFIX = "greenlight-cp-"
_OWNER_FILE = "owner.pid"

T = TypeVar("T")


class ControlPlaneError(RuntimeError):
    """The local control plane could not be started, or a command against it failed."""


class MissingBinaryError(ControlPlaneError):
    """A control-plane binary is not where it should be."""


class LocalClusterSettings(BaseModel):
    """How the local control plane is found and started."""

    model_config = ConfigDict(frozen=True)

    bin_dir: Path | None = Field(
        default=None,
        description=(
            "Directory with etcd, kube-apiserver, kube-controller-manager, kube-scheduler, "
            f"kubectl and kwok. Unset: ${ENV_BIN_DIR}, else what hack/build-control-plane.sh "
            "prints (it builds the binaries on first use)."
        ),
    )
    start_timeout_s: float = Field(
        default=180.0,
        gt=0,
        description="How long each component may take to become ready.",
    )
    stop_grace_s: float = Field(
        default=10.0,
        ge=0,
        description="How long processes get after SIGTERM before SIGKILL.",
    )


@dataclass(frozen=True)
class FakeNode:
    """A node that kwok pretends to run: it reports Ready and completes the Job pods bound to it."""

    name: str
    cpu: str = "32"
    memory: str = "256Gi"
    pods: int = 110
    gpus: int = 0
    gpu_product: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """The Node object, status included (kwok keeps the capacity it is given)."""
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
            **self.labels,
        }
        resources: dict[str, str] = {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": str(self.pods),
        }
        if self.gpus:
            resources[GPU_RESOURCE] = str(self.gpus)
        if self.gpu_product:
            labels[GPU_PRODUCT_LABEL] = self.gpu_product
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                "annotations": {
                    KWOK_NODE_ANNOTATION: KWOK_NODE_ANNOTATION_VALUE,
                    "node.alpha.kubernetes.io/ttl": "0",
                },
            },
            "spec": {},
            "status": {"capacity": resources, "allocatable": resources},
        }


CPU_NODE = FakeNode(name="kwok-cpu-0")
GPU_NODE = FakeNode(name="kwok-gpu-0", gpus=8, gpu_product="NVIDIA-A100-SXM4-80GB")
DEFAULT_NODES: tuple[FakeNode, ...] = (CPU_NODE, GPU_NODE)


def host_webhook_configurations(
    base_url: str,
    ca_bundle: str,
    *,
    name: str = WEBHOOK_CONFIGURATION_NAME,
    excluded_namespaces: Sequence[str] = ("kube-system", "greenlight"),
    timeout_s: int = 5,
    workloads: Sequence[Workload] = WORKLOADS,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """greenlight's MutatingWebhookConfiguration and ValidatingWebhookConfiguration as the Helm
    chart registers them, but with ``clientConfig.url`` (``base_url`` + ``/mutate`` or
    ``/validate``) for a server running on this host instead of a Service.

    The kinds ``workloads`` (all greenlight knows by default, as ``workloads.enabled``);
    opt-in by the ``greenlight.dev/enabled=true`` namespace label; ``excluded_namespaces`` left
    out by the immutable ``kubernetes.io/metadata.name`` label (a mutable exemption label would
    let anyone opt out); fail open (``failurePolicy: Ignore``); ``sideEffects: None`` so that
    dry-run requests reach the webhook.
    """
    namespace_selector = {
        "matchExpressions": [
            {"key": OPT_IN_LABEL, "operator": "In", "values": ["true"]},
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": list(excluded_namespaces),
            },
        ]
    }

    def hook(hook_name: str, path: str, operations: list[str]) -> dict[str, Any]:
        return {
            "name": hook_name,
            "clientConfig": {"url": f"{base_url.rstrip('/')}{path}", "caBundle": ca_bundle},
            "rules": admission_rules(workloads, operations),
            "namespaceSelector": namespace_selector,
            "failurePolicy": "Ignore",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": timeout_s,
        }

    mutating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                **hook("mutate.jobs.greenlight.dev", "/mutate", ["CREATE"]),
                "reinvocationPolicy": "IfNeeded",
            }
        ],
    }
    validating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [hook("validate.jobs.greenlight.dev", "/validate", ["CREATE", "UPDATE"])],
    }
    return mutating, validating


def resolve_bin_dir(
    bin_dir: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    build_script: Path = BUILD_SCRIPT,
) -> Path:
    """Where the control-plane binaries are: ``bin_dir``, else ``$GREENLIGHT_K8S_BIN``, else the
    directory the build script prints (it builds what is missing; its progress goes to stderr).
    """
    if bin_dir is not None:
        return bin_dir
    env = os.environ if environ is None else environ
    if env.get(ENV_BIN_DIR):
        return Path(env[ENV_BIN_DIR])
    if not build_script.is_file():
        raise MissingBinaryError(
            f"${ENV_BIN_DIR} is not set and the build script {build_script} is not there: "
            f"set {ENV_BIN_DIR} to a directory with {', '.join(CORE_BINARIES + WORKLOAD_BINARIES)}"
        )
    result = subprocess.run(  # noqa: S603 (our own script, fixed arguments)
        [str(build_script)], stdout=subprocess.PIPE, text=True, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise MissingBinaryError(
            f"{build_script} failed (exit {result.returncode}); its messages above say why"
        )
    return Path(lines[-1])


def require_binary(bin_dir: Path, name: str) -> Path:
    """The path of ``name`` in ``bin_dir``, or an error that says how to build it."""
    path = bin_dir / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingBinaryError(
            f"{name} not found in {bin_dir} (${ENV_BIN_DIR}). Build the control plane with "
            f"`hack/build-control-plane.sh` (or `make control-plane`) and set "
            f"{ENV_BIN_DIR}=$(hack/build-control-plane.sh)"
        )
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    condition: Callable[[], T],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.25,
    still_possible: Callable[[], None] | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that.

    ``still_possible`` is called before each try and raises when waiting is pointless (e.g. the
    process that should become ready has exited). Exceptions from ``condition`` count as "not
    yet"; the last one is named in the timeout error.
    """
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        if still_possible is not None:
            still_possible()
        try:
            result = condition()
        except Exception as e:  # any failure means "not yet"
            last_error = e
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error is not None else ""
            raise ControlPlaneError(f"timed out after {timeout_s:.0f} s waiting for {what}{detail}")
        time.sleep(interval_s)


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path


def _die_with_parent() -> None:  # pragma: no cover (runs in the child between fork and exec)
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _signal_group(process: _Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.popen.pid, sig)


def _terminate(processes: list[_Process], grace_s: float) -> None:
    """Terminate every process group, newest first.

    One at a time: kube-apiserver shuts down in about a second while etcd is there, but hangs
    until SIGKILL when etcd goes first.
    """
    for process in reversed(processes):
        _signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=grace_s)
        # Also kills any other member of the group that outlived its leader.
        _signal_group(process, signal.SIGKILL)
        process.popen.wait()
    processes.clear()


def _teardown(processes: list[_Process], workdir: Path, grace_s: float) -> None:
    """Terminate every process, then remove the work directory."""
    _terminate(processes, grace_s)
    shutil.rmtree(workdir, ignore_errors=True)


class LocalControlPlane:
    """etcd + kube-apiserver (and on demand the workload components) on loopback ports.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. The first ``start`` is
    the only one; a stopped plane cannot be restarted.
    """

    def __init__(self, settings: LocalClusterSettings | None = None) -> None:
        self.settings = settings or LocalClusterSettings()
        _remove_orphaned_workdirs()
        self.workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
        (self.workdir / _OWNER_FILE).write_text(str(os.getpid()))
        self._processes: list[_Process] = []
        self._finalizer = weakref.finalize(
            self, _teardown, self._processes, self.workdir, self.settings.stop_grace_s
        )
        self._bin_dir: Path | None = None
        self._started = False
        self._workloads_started = False
        self._env = _child_environment(self.workdir)
        self.apiserver_port = 0
        self.etcd_port = 0
        self.ca = certs.KeyPair(cert_pem=b"", key_pem=b"")

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Start etcd and kube-apiserver, wait for ``/readyz``, write the admin kubeconfig."""
        if self._started:
            return self
        if not self._finalizer.alive:
            raise ControlPlaneError("this control plane was stopped; create a new one")
        self._started = True
        try:
            self._bin_dir = resolve_bin_dir(self.settings.bin_dir)
            for name in CORE_BINARIES:
                require_binary(self._bin_dir, name)
            self._write_pki()
            self._start_etcd_and_apiserver()
            self._write_kubeconfig()
        except BaseException:
            self.stop()
            raise
        return self

    def start_workloads(self, nodes: Sequence[FakeNode] = DEFAULT_NODES) -> None:
        """Start kube-controller-manager, kube-scheduler and kwok, create ``nodes`` and wait
        until kwok reports them Ready. Idempotent."""
        if not self._started:
            raise ControlPlaneError("start the control plane before its workload components")
        if self._workloads_started:
            return
        bin_dir = self._require_bin_dir()
        for name in WORKLOAD_BINARIES:
            require_binary(bin_dir, name)
        self._workloads_started = True
        try:
            self._start_controller_manager()
            self._start_scheduler()
            self._start_kwok()
            self.create_nodes(nodes)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate every process and remove the work directory. Safe to call twice."""
        self._finalizer()

    @property
    def running(self) -> bool:
        return self._finalizer.alive and self._started

    # -- what callers use --------------------------------------------------------------------

    @property
    def server_url(self) -> str:
        return f"https://{_LOOPBACK}:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_cert_pem(self) -> bytes:
        """The cluster CA: it signed the apiserver's serving certificate and the client certs."""
        return self.ca.cert_pem

    @property
    def pids(self) -> dict[str, int]:
        """Process-group leader id of each component started (name -> pid)."""
        return {process.name: process.popen.pid for process in self._processes}

    def environ(self) -> dict[str, str]:
        """Environment for a child process (e.g. greenlight's reconciler) using this cluster."""
        return {**self._env, "KUBECONFIG": str(self.kubeconfig)}

    def signing_keys_file(self) -> Path:
        """A file with a random HMAC signing key for greenlight's processes on this cluster
        (``provenance.keys_file``), written on first use, readable by the owner only: the
        local counterpart of the Secret the chart creates."""
        path = self.workdir / "signing-keys"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_hex(32) + "\n")
        return path

    def issue_serving_certs(
        self,
        directory: Path,
        *,
        dns_names: Sequence[str] = ("localhost",),
        ip_addresses: Sequence[str] = certs.LOOPBACK_IPS,
    ) -> str:
        """Write a serving set (tls.crt, tls.key, ca.crt) signed by the cluster CA into
        ``directory``, for a server on this host the apiserver calls (a webhook registered by
        ``url``). Returns the ``caBundle`` to register it with."""
        bundle = certs.build_serving_bundle(
            dns_names=dns_names, ip_addresses=ip_addresses, now=datetime.now(UTC), ca=self.ca
        )
        certs.write_cert_dir(directory, bundle.files())
        return certs.ca_bundle_b64(self.ca.cert_pem)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout_s: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster as the admin; raises ControlPlaneError on failure
        when ``check``."""
        kubectl = require_binary(self._require_bin_dir(), "kubectl")
        command = [str(kubectl), f"--kubeconfig={self.kubeconfig}", *args]
        try:
            result = subprocess.run(  # noqa: S603 (fixed binary, caller's arguments)
                command,
                input=stdin,
                capture_output=True,
                text=True,
                env=self._env,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise ControlPlaneError(f"kubectl {' '.join(args)}: no answer in {timeout_s} s") from e
        if check and result.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed (exit {result.returncode}): "
                f"{result.stderr.strip()}"
            )
        return result

    def register_host_webhook(
        self, base_url: str, ca_bundle: str, *, name: str = WEBHOOK_CONFIGURATION_NAME
    ) -> None:
        """Apply :func:`host_webhook_configurations` for a server on this host."""
        mutating, validating = host_webhook_configurations(base_url, ca_bundle, name=name)
        items = {"apiVersion": "v1", "kind": "List", "items": [mutating, validating]}
        self.kubectl("apply", "-f", "-", stdin=json.dumps(items))

    def unregister_host_webhook(self, name: str = WEBHOOK_CONFIGURATION_NAME) -> None:
        """Delete the webhook configurations called ``name`` (absent ones are fine)."""
        self.kubectl(
            "delete",
            "--ignore-not-found",
            f"mutatingwebhookconfiguration/{name}",
            f"validatingwebhookconfiguration/{name}",
        )

    def create_nodes(self, nodes: Sequence[FakeNode]) -> None:
        """Create kwok-managed nodes and wait until each is Ready."""
        if not nodes:
            return
        manifest = {"apiVersion": "v1", "kind": "List", "items": [n.manifest() for n in nodes]}
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        timeout = f"{self.settings.start_timeout_s:.0f}s"
        names = [f"node/{node.name}" for node in nodes]
        self.kubectl(
            "wait",
            "--for=condition=Ready",
            f"--timeout={timeout}",
            *names,
            timeout_s=self.settings.start_timeout_s + 10,
        )

    def log_path(self, component: str) -> Path:
        return self.workdir / "logs" / f"{component}.log"

    def log_tail(self, component: str, lines: int = 30) -> str:
        """The last ``lines`` lines of a component's log ('' when it has none)."""
        try:
            text = self.log_path(component).read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def bin_dir(self) -> Path:
        """The directory of the control-plane binaries in use (kubectl among them)."""
        return self._require_bin_dir()

    # -- internals ---------------------------------------------------------------------------

    def _require_bin_dir(self) -> Path:
        if self._bin_dir is None:
            raise ControlPlaneError("the control plane is not started")
        return self._bin_dir

    def _spawn(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        binary = require_binary(self._require_bin_dir(), name)
        log_path = self.log_path(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            popen = subprocess.Popen(  # noqa: S603 (fixed binary, generated arguments)
                [str(binary), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=dict(env or self._env),
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (only a prctl call)
            )
        self._processes.append(_Process(name=name, popen=popen, log_path=log_path))

    def _alive_check(self, name: str) -> Callable[[], None]:
        process = next(p for p in self._processes if p.name == name)

        def check() -> None:
            code = process.popen.poll()
            if code is not None:
                raise ControlPlaneError(
                    f"{name} exited with code {code} while starting; last lines of "
                    f"{process.log_path}:\n{self.log_tail(name)}"
                )

        return check

    def _write_pki(self) -> None:
        pki = self.workdir / "pki"
        now = datetime.now(UTC)
        self.ca = certs.build_ca(now=now, days=30, common_name="greenlight-local-ca")
        serving = certs.build_serving_cert(
            self.ca,
            dns_names=[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            ip_addresses=[_LOOPBACK, "10.0.0.1"],
            now=now,
            days=30,
        )
        admin = certs.build_client_cert(
            self.ca, common_name=ADMIN_USER, organizations=["system:masters"], now=now, days=30
        )
        certs.write_cert_dir(
            pki,
            {
                "ca.crt": self.ca.cert_pem,
                "apiserver.crt": serving.cert_pem,
                "apiserver.key": serving.key_pem,
                "admin.crt": admin.cert_pem,
                "admin.key": admin.key_pem,
                "service-account.key": certs.build_signing_key_pem(),
            },
        )

    def _start_etcd_and_apiserver(self, attempts: int = 3) -> None:
        # A free port can be taken by another process (another test run on this machine)
        # between our probe and the component's bind: start again on fresh ports.
        for attempt in range(1, attempts + 1):
            try:
                self._start_etcd()
                self._start_apiserver()
            except ControlPlaneError as e:
                if "address already in use" not in str(e) or attempt == attempts:
                    raise
                _terminate(self._processes, self.settings.stop_grace_s)
                shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
            else:
                return

    def _start_etcd(self) -> None:
        self.etcd_port, peer_port = free_port(), free_port()
        client_url = f"http://{_LOOPBACK}:{self.etcd_port}"
        peer_url = f"http://{_LOOPBACK}:{peer_port}"
        self._spawn(
            "etcd",
            [
                "--name=greenlight",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=greenlight={peer_url}",
                "--unsafe-no-fsync=true",  # throwaway data: durability buys nothing here
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            response = httpx.get(f"{client_url}/health", timeout=2.0, trust_env=False)
            return response.status_code == 200 and response.json().get("health") == "true"

        wait_until(
            healthy,
            timeout_s=self.settings.start_timeout_s,
            what=f"etcd at {client_url}",
            still_possible=self._alive_check("etcd"),
        )

    def _start_apiserver(self) -> None:
        pki = self.workdir / "pki"
        self.apiserver_port = free_port()
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://{_LOOPBACK}:{self.etcd_port}",
                f"--bind-address={_LOOPBACK}",
                f"--advertise-address={_LOOPBACK}",
                # Endpoints may not hold a loopback address: leave the `kubernetes` Service
                # without endpoints instead of failing to sync them every few seconds.
                "--endpoint-reconciler-type=none",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'service-account.key'}",
                f"--service-account-signing-key-file={pki / 'service-account.key'}",
                # No service-account token controller runs here, so pods must not need tokens;
                # and no node-lifecycle controller, which would lift the not-ready taint that
                # TaintNodesByCondition puts on every new node (kwok's nodes are Ready at once).
                "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
                "--allow-privileged=true",
                "--profiling=false",
            ],
        )
        context = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        context.load_cert_chain(pki / "admin.crt", pki / "admin.key")

        def ready() -> bool:
            response = httpx.get(
                f"{self.server_url}/readyz", verify=context, timeout=5.0, trust_env=False
            )
            return response.status_code == 200

        wait_until(
            ready,
            timeout_s=self.settings.start_timeout_s,
            what=f"kube-apiserver /readyz at {self.server_url}",
            still_possible=self._alive_check("kube-apiserver"),
        )

    def _write_kubeconfig(self) -> None:
        pki = self.workdir / "pki"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "greenlight-local",
                    "cluster": {
                        "server": self.server_url,
                        "certificate-authority-data": certs.ca_bundle_b64(self.ca.cert_pem),
                    },
                }
            ],
            "users": [
                {
                    "name": ADMIN_USER,
                    "user": {
                        "client-certificate-data": certs.ca_bundle_b64(
                            (pki / "admin.crt").read_bytes()
                        ),
                        "client-key-data": certs.ca_bundle_b64((pki / "admin.key").read_bytes()),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "greenlight-local",
                    "context": {"cluster": "greenlight-local", "user": ADMIN_USER},
                }
            ],
            "current-context": "greenlight-local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def _start_controller_manager(self) -> None:
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--controllers={','.join(DEFAULT_CONTROLLERS)}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--secure-port=0",
            ],
        )

    def _start_scheduler(self) -> None:
        config = self.workdir / "kube-scheduler.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {"kubeconfig": str(self.kubeconfig)},
                    "leaderElection": {"leaderElect": False},
                }
            )
        )
        self._spawn("kube-scheduler", [f"--config={config}", "--secure-port=0"])

    def _start_kwok(self) -> None:
        # kwok reads ~/.kwok/kwok.yaml when it exists: give it an empty home of its own so a
        # developer's config cannot change what the tests see.
        home = self.workdir / "kwok-home"
        home.mkdir(exist_ok=True)
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--cidr={KWOK_POD_CIDR}",
                f"--manage-nodes-with-annotation-selector="
                f"{KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE}",
            ],
            env={**self._env, "HOME": str(home)},
        )


def _remove_orphaned_workdirs() -> None:
    """Remove work directories whose owner died without cleaning up (SIGKILL, or SIGTERM to a
    process with no handler); its children died with it (PR_SET_PDEATHSIG)."""
    for workdir in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            owner = int((workdir / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being set up
        if not _pid_alive(owner):
            shutil.rmtree(workdir, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _child_environment(workdir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    no_proxy = ",".join(
        part for part in (env.get("NO_PROXY", ""), "127.0.0.1,localhost,::1") if part
    )
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    env["KUBECACHEDIR"] = str(workdir / "kube-cache")
    return env
