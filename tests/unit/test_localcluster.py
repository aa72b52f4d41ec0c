"""The local control plane's pure parts: finding binaries, fake nodes, webhook registration,
polling. (Starting the real thing is tested in tests/e2e/test_controlplane.py.)"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from webhook.devtools.localcluster import (
    CPU_NODE,
    ENV_BIN_DIR,
    GPU_NODE,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    KWOK_NODE_ANNOTATION,
    OPT_IN_LABEL,
    ControlPlaneError,
    FakeNode,
    MissingBinaryError,
    host_webhook_configurations,
    require_binary,
    resolve_bin_dir,
    wait_until,
)


def script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize(
    ("explicit", "env", "expected"),
    [
        pytest.param("/given", "/from-env", "/given", id="explicit-wins"),
        pytest.param(None, "/from-env", "/from-env", id="env-next"),
        pytest.param(None, "", "/from-script", id="empty-env-means-unset"),
        pytest.param(None, None, "/from-script", id="script-last"),
    ],
)
def test_bin_dir_comes_from_argument_then_env_then_build_script(
    tmp_path: Path, explicit: str | None, env: str | None, expected: str
) -> None:
    build = script(tmp_path / "build.sh", "echo building >&2; echo /from-script")
    environ = {} if env is None else {ENV_BIN_DIR: env}
    found = resolve_bin_dir(
        Path(explicit) if explicit else None, environ=environ, build_script=build
    )
    assert found == Path(expected)


def test_a_failing_build_script_is_reported(tmp_path: Path) -> None:
    build = script(tmp_path / "build.sh", "exit 3")
    with pytest.raises(MissingBinaryError, match=r"build\.sh failed \(exit 3\)"):
        resolve_bin_dir(environ={}, build_script=build)


def test_without_env_or_build_script_the_error_says_to_set_the_env(tmp_path: Path) -> None:
    with pytest.raises(MissingBinaryError, match=f"set {ENV_BIN_DIR} to a directory with etcd"):
        resolve_bin_dir(environ={}, build_script=tmp_path / "absent.sh")


@pytest.mark.parametrize("file_present", [True, False], ids=["not-executable", "absent"])
def test_a_missing_binary_is_named_with_the_command_that_builds_it(
    tmp_path: Path, file_present: bool
) -> None:
    if file_present:
        (tmp_path / "kwok").write_text("")
    with pytest.raises(
        MissingBinaryError, match=r"kwok not found in .*hack/build-control-plane\.sh"
    ):
        require_binary(tmp_path, "kwok")


def test_require_binary_finds_an_executable(tmp_path: Path) -> None:
    binary = script(tmp_path / "etcd", "true")
    assert require_binary(tmp_path, "etcd") == binary


def test_wait_until_returns_the_first_truthy_value() -> None:
    answers = iter([None, "", "ready"])
    assert wait_until(lambda: next(answers), timeout_s=5, what="x", interval_s=0) == "ready"


def test_wait_until_names_what_it_waited_for_and_the_last_error() -> None:
    def broken() -> bool:
        raise ConnectionError("refused")

    with pytest.raises(ControlPlaneError, match=r"waiting for etcd \(last error: refused\)"):
        wait_until(broken, timeout_s=0.01, what="etcd", interval_s=0)


def test_wait_until_stops_as_soon_as_waiting_is_pointless() -> None:
    def exited() -> None:
        raise ControlPlaneError("etcd exited with code 1")

    with pytest.raises(ControlPlaneError, match="exited with code 1"):
        wait_until(lambda: False, timeout_s=60, what="etcd", still_possible=exited)


def test_gpu_node_offers_gpus_with_the_product_label_and_no_taint() -> None:
    node = GPU_NODE.manifest()
    assert node["status"]["capacity"][GPU_RESOURCE] == "8"
    assert node["status"]["allocatable"] == node["status"]["capacity"]
    assert node["metadata"]["labels"][GPU_PRODUCT_LABEL] == "NVIDIA-A100-SXM4-80GB"
    assert node["metadata"]["annotations"][KWOK_NODE_ANNOTATION] == "fake"
    assert "taints" not in node["spec"]


def test_cpu_node_offers_no_gpus() -> None:
    node = CPU_NODE.manifest()
    assert GPU_RESOURCE not in node["status"]["capacity"]
    assert GPU_PRODUCT_LABEL not in node["metadata"]["labels"]


def test_extra_node_labels_are_kept_beside_the_standard_ones() -> None:
    labels = FakeNode("n", labels={"topology.kubernetes.io/zone": "a"}).manifest()["metadata"][
        "labels"
    ]
    assert labels["topology.kubernetes.io/zone"] == "a"
    assert labels["kubernetes.io/hostname"] == "n"


def webhooks() -> tuple[dict[str, Any], dict[str, Any]]:
    mutating, validating = host_webhook_configurations("https://127.0.0.1:8443/", "Q0E=")
    return mutating["webhooks"][0], validating["webhooks"][0]


@pytest.mark.parametrize(
    ("index", "path", "operations"),
    [
        pytest.param(0, "/mutate", ["CREATE"], id="mutating"),
        pytest.param(1, "/validate", ["CREATE", "UPDATE"], id="validating"),
    ],
)
def test_host_webhooks_are_called_by_url_for_jobs_only_and_fail_open(
    index: int, path: str, operations: list[str]
) -> None:
    hook = webhooks()[index]
    assert hook["clientConfig"] == {"url": f"https://127.0.0.1:8443{path}", "caBundle": "Q0E="}
    assert hook["rules"][0]["resources"] == ["jobs"]
    assert hook["rules"][0]["apiGroups"] == ["batch"]
    assert hook["rules"][0]["operations"] == operations
    assert hook["failurePolicy"] == "Ignore"
    assert hook["sideEffects"] == "None"


def test_host_webhooks_select_opted_in_namespaces_but_never_system_ones() -> None:
    expressions = webhooks()[0]["namespaceSelector"]["matchExpressions"]
    assert {"key": OPT_IN_LABEL, "operator": "In", "values": ["true"]} in expressions
    assert {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": ["kube-system", "greenlight"],
    } in expressions
