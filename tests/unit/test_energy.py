"""The energy model: GPU catalog matching, workload classes, estimates, profiles, calibrations."""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from webhook.core.datafiles import DataFileError
from webhook.core.energy import (
    WORKLOAD_POWER,
    WORKLOADS,
    Calibration,
    EnergyInputs,
    EnergyModelError,
    EnergySettings,
    GpuCatalog,
    UnknownGpuModelError,
    Workload,
    estimate_energy,
    load_catalog,
    packaged_profiles,
    parse_workload,
    read_calibrations,
    read_gpu_profiles,
    write_calibration,
)
from webhook.workloads.job import job_resources

SHARED_GPU = Path(__file__).resolve().parents[3] / "shared" / "data" / "gpu"
PACKAGED_CSV = Path(__file__).resolve().parents[2] / "webhook" / "data" / "gpu_power_profiles.csv"
HEADER = "gpu,nvml_name_pattern,form_factor,mem_gb,tdp_w,idle_w_low,idle_w_high\n"


@pytest.fixture(scope="module")
def catalog() -> GpuCatalog:
    return load_catalog(EnergySettings())


def inputs(**overrides: Any) -> EnergyInputs:
    values: dict[str, Any] = {
        "gpu_model": "A100",
        "gpu_count": 1,
        "workload": Workload.TRAINING,
        "cpu_cores": 0.0,
        "memory_gib": 0.0,
        "duration_s": 3600.0,
    }
    values.update(overrides)
    return EnergyInputs(**values)


def calibration(**overrides: Any) -> Calibration:
    values: dict[str, Any] = {
        "gpu_name": "NVIDIA GeForce RTX 3090",
        "model": "RTX 3090",
        "workload": "training",
        "power_fraction": 0.8,
        "power_limit_w": 350.0,
        "average_power_w": 280.0,
        "energy_j": 280.0 * 60,
        "duration_s": 60.0,
        "measured_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "method": "energy-counter",
        "device_index": 0,
    }
    values.update(overrides)
    return Calibration(**values)


# --- GPU model matching ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "model"),
    [
        # GPU feature discovery labels (nvidia.com/gpu.product)
        pytest.param("NVIDIA-A100-SXM4-80GB", "A100 80GB SXM4", id="gfd-a100-sxm4-80"),
        pytest.param("NVIDIA-A100-SXM4-40GB", "A100 40GB SXM4", id="gfd-a100-sxm4-40"),
        pytest.param("NVIDIA-A100-PCIE-40GB", "A100 40GB PCIe", id="gfd-a100-pcie-40"),
        pytest.param("Tesla-T4", "T4", id="gfd-t4"),
        pytest.param("NVIDIA-H100-80GB-HBM3", "H100 SXM5 80GB", id="gfd-h100-sxm"),
        pytest.param("NVIDIA-GeForce-RTX-3090", "RTX 3090", id="gfd-3090"),
        pytest.param("Tesla-V100-PCIE-32GB", "V100 PCIe 16/32GB", id="gfd-v100-pcie"),
        pytest.param("NVIDIA-A100-SXM4-40GB-SHARED", "A100 40GB SXM4", id="gfd-time-sliced"),
        pytest.param("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", "A100 40GB SXM4", id="gfd-mig"),
        # NVML names
        pytest.param("NVIDIA H100 80GB HBM3", "H100 SXM5 80GB", id="nvml-h100-sxm"),
        pytest.param("NVIDIA H100 PCIe", "H100 PCIe 80GB", id="nvml-h100-pcie"),
        pytest.param("NVIDIA A100 80GB PCIe", "A100 80GB PCIe", id="nvml-a100-80-pcie"),
        pytest.param("Tesla V100-SXM2-16GB", "V100 SXM2 16/32GB", id="nvml-v100-sxm2"),
        pytest.param("NVIDIA RTX A6000", "RTX A6000", id="nvml-a6000"),
        # short names people write in annotations, and cloud labels
        pytest.param("A100", "A100 80GB SXM4", id="a100-default-variant"),
        pytest.param("h100", "H100 SXM5 80GB", id="h100-default-variant"),
        pytest.param("V100", "V100 SXM2 16/32GB", id="v100-default-variant"),
        pytest.param("a100-80gb", "A100 80GB SXM4", id="a100-80gb-sxm-preferred"),
        pytest.param("a100-pcie", "A100 80GB PCIe", id="a100-pcie-larger-memory"),
        pytest.param("H100-SXM", "H100 SXM5 80GB", id="h100-sxm"),
        pytest.param("h100 nvl", "H100 NVL 94GB", id="h100-nvl"),
        pytest.param("rtx-3090", "RTX 3090", id="rtx-3090"),
        pytest.param("RTX3090", "RTX 3090", id="rtx3090-joined"),
        pytest.param("4090", "RTX 4090", id="bare-4090"),
        pytest.param("a10", "A10", id="a10-not-a100-or-a10g"),
        pytest.param("A10G", "A10G (AWS g5)", id="a10g"),
        pytest.param("l40s", "L40S", id="l40s"),
        pytest.param("L4", "L4", id="l4"),
        pytest.param("b200", "B200 180GB", id="b200"),
        pytest.param("H200", "H200 SXM 141GB", id="h200"),
        pytest.param("nvidia-tesla-t4", "T4", id="gke-t4"),
        pytest.param("nvidia-h100-mega-80gb", "H100 SXM5 80GB", id="gke-h100-mega"),
        pytest.param("A100 40GB PCIe", "A100 40GB PCIe", id="catalog-name"),
    ],
)
def test_gpu_names_people_write_resolve_to_catalog_models(
    catalog: GpuCatalog, name: str, model: str
) -> None:
    assert catalog.resolve(name).name == model


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("L40", id="l40-is-not-l40s"),
        pytest.param("NVIDIA GeForce RTX 3090 Ti", id="3090-ti"),
        pytest.param("GB200", id="gb200"),
        pytest.param("NVIDIA H200 NVL", id="h200-nvl"),
        pytest.param("MI300X", id="amd"),
        pytest.param("", id="empty"),
    ],
)
def test_unknown_gpu_models_list_the_known_ones(catalog: GpuCatalog, name: str) -> None:
    with pytest.raises(UnknownGpuModelError, match="unknown GPU model") as caught:
        catalog.resolve(name)
    assert "A100 80GB SXM4" in str(caught.value)
    assert "RTX A6000" in str(caught.value)


# --- Workload classes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "workload"),
    [
        pytest.param("training", Workload.TRAINING, id="training"),
        pytest.param("Batch-Inference", Workload.BATCH_INFERENCE, id="mixed-case"),
        pytest.param("online_inference", Workload.ONLINE_INFERENCE, id="underscore"),
        pytest.param(" rendering ", Workload.RENDERING, id="spaces"),
        pytest.param("cpu", Workload.CPU, id="cpu"),
    ],
)
def test_workload_classes_parse(text: str, workload: Workload) -> None:
    assert parse_workload(text) is workload


def test_an_unknown_workload_class_lists_the_classes() -> None:
    with pytest.raises(EnergyModelError, match=", ".join(WORKLOADS)):
        parse_workload("inference")


@pytest.mark.parametrize(
    ("workload", "low", "high"),
    [
        pytest.param(Workload.TRAINING, 0.85, 0.97, id="training"),
        pytest.param(Workload.BATCH_INFERENCE, 0.60, 0.93, id="batch-inference"),
        pytest.param(Workload.ONLINE_INFERENCE, 0.45, 0.77, id="online-inference"),
    ],
)
def test_class_fractions_lie_in_the_shared_readmes_ranges(
    workload: Workload, low: float, high: float
) -> None:
    fraction = WORKLOAD_POWER[workload].fraction_of_tdp
    assert fraction is not None
    assert low <= fraction <= high


def _mlenergy_median(keep: Callable[[dict[str, str]], bool]) -> float:
    path = SHARED_GPU / "mlenergy_power_fraction_of_tdp.csv"
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    with path.open() as handle:
        rows = [row for row in csv.DictReader(handle) if keep(row)]
    return statistics.median(float(row["median_frac_tdp"]) for row in rows)


def _large_batch(row: dict[str, str]) -> bool:
    return row["bucket"].startswith(("64<", "max_num_seqs>", "batch_size>"))


@pytest.mark.parametrize(
    ("workload", "keep"),
    [
        pytest.param(Workload.BATCH_INFERENCE, _large_batch, id="batch-inference"),
        pytest.param(
            Workload.ONLINE_INFERENCE,
            lambda r: not _large_batch(r) and r["workload"] != "text-to-video",
            id="online-inference",
        ),
        pytest.param(
            Workload.RENDERING, lambda r: r["workload"].startswith("text-to-"), id="rendering"
        ),
    ],
)
def test_class_fractions_are_the_documented_medians_of_the_mlenergy_data(
    workload: Workload, keep: Callable[[dict[str, str]], bool]
) -> None:
    assert WORKLOAD_POWER[workload].fraction_of_tdp == pytest.approx(_mlenergy_median(keep))


# --- Estimates -------------------------------------------------------------------------------


def test_an_estimate_adds_gpu_cpu_memory_power_times_duration_times_pue(
    catalog: GpuCatalog,
) -> None:
    settings = EnergySettings(pue=1.5, cpu_watts_per_core=10.0, memory_watts_per_gib=0.5)
    job = inputs(
        gpu_model="Tesla-T4",
        gpu_count=2,
        workload=Workload.BATCH_INFERENCE,
        cpu_cores=4,
        memory_gib=16,
        duration_s=2 * 3600,
    )
    estimate = estimate_energy(job, catalog, settings)
    # GPU 0.79 x 70 W = 55.3 W, x 2 = 110.6 W; CPU 4 x 10 W = 40 W; memory 16 x 0.5 W = 8 W.
    assert estimate.gpu_power_w == pytest.approx(55.3)
    assert estimate.gpu_kwh == pytest.approx(0.2212)
    assert estimate.cpu_kwh == pytest.approx(0.080)
    assert estimate.memory_kwh == pytest.approx(0.016)
    assert estimate.it_power_w == pytest.approx(158.6)
    assert estimate.facility_overhead_kwh == pytest.approx(0.3172 * 0.5)
    assert estimate.energy_kwh == pytest.approx(0.3172 * 1.5)
    assert estimate.average_power_w == pytest.approx(158.6 * 1.5)
    assert (estimate.gpu_model, estimate.gpu_tdp_w, estimate.gpu_power_source) == (
        "T4",
        70.0,
        "workload-class",
    )


@pytest.mark.parametrize(
    "job",
    [
        pytest.param(inputs(), id="gpu-only"),
        pytest.param(inputs(gpu_count=8, cpu_cores=96, memory_gib=1024), id="big-node"),
        pytest.param(inputs(gpu_count=0, cpu_cores=2, memory_gib=4), id="cpu-only"),
        pytest.param(inputs(duration_s=0), id="zero-duration"),
    ],
)
def test_the_breakdown_adds_up_to_the_total(catalog: GpuCatalog, job: EnergyInputs) -> None:
    estimate = estimate_energy(job, catalog, EnergySettings())
    parts = estimate.gpu_kwh + estimate.cpu_kwh + estimate.memory_kwh
    assert estimate.energy_kwh == pytest.approx(parts + estimate.facility_overhead_kwh)
    assert estimate.energy_kwh == pytest.approx(parts * EnergySettings().pue)


def test_a_job_without_gpus_has_no_gpu_energy_and_needs_no_gpu_model(
    catalog: GpuCatalog,
) -> None:
    estimate = estimate_energy(
        inputs(gpu_model="no such GPU", gpu_count=0, cpu_cores=2), catalog, EnergySettings()
    )
    assert estimate.gpu_kwh == 0
    assert (estimate.gpu_model, estimate.gpu_power_source) == (None, "none")
    assert estimate.cpu_kwh == pytest.approx(0.024)


def test_gpus_of_a_cpu_workload_draw_their_idle_power(catalog: GpuCatalog) -> None:
    estimate = estimate_energy(
        inputs(gpu_model="L4", workload=Workload.CPU), catalog, EnergySettings()
    )
    assert estimate.gpu_power_w == catalog.resolve("L4").idle_w_high
    assert estimate.gpu_power_source == "idle"


def test_unstated_model_and_workload_take_the_settings_defaults(catalog: GpuCatalog) -> None:
    settings = EnergySettings(default_gpu_model="t4", default_workload=Workload.ONLINE_INFERENCE)
    estimate = estimate_energy(inputs(gpu_model=None, workload=None), catalog, settings)
    assert (estimate.gpu_model, estimate.workload) == ("T4", Workload.ONLINE_INFERENCE)
    assert estimate.gpu_power_w == pytest.approx(0.645 * 70)
    assert any("default 't4'" in note for note in estimate.notes)


def test_an_unknown_model_in_the_inputs_is_an_error(catalog: GpuCatalog) -> None:
    with pytest.raises(UnknownGpuModelError):
        estimate_energy(inputs(gpu_model="L40"), catalog, EnergySettings())


def test_the_seed_experiment_lands_near_its_logged_energy(catalog: GpuCatalog) -> None:
    """One RTX 3090 training ResNet50 for ~57 min logged ~0.475 kWh per run (shared README,
    seed-experiment/); its CronJob requested 1 CPU and 8Gi. The training class is a band of
    0.85-0.97 of TDP, +-6.6 % around the 0.91 used, and the logged value includes the host
    share the experiment measured; within 10 % is as close as the model can honestly claim."""
    job = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "pytorch-training",
                            "resources": {
                                "requests": {"cpu": "1", "memory": "8Gi", "nvidia.com/gpu": "1"},
                                "limits": {"cpu": "2", "memory": "16Gi", "nvidia.com/gpu": "1"},
                            },
                        }
                    ]
                }
            }
        }
    }
    energy_inputs = EnergyInputs.from_job(
        job_resources(job), duration_s=57 * 60, workload=Workload.TRAINING, gpu_model="rtx-3090"
    )
    estimate = estimate_energy(energy_inputs, catalog, EnergySettings())
    assert estimate.gpu_model == "RTX 3090"
    assert estimate.energy_kwh == pytest.approx(0.475, rel=0.10)


def test_the_gpu_product_a_job_is_pinned_to_wins_over_the_annotation() -> None:
    job = {
        "spec": {
            "template": {
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.product": "Tesla-T4"},
                    "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1}}}],
                }
            }
        }
    }
    pinned = EnergyInputs.from_job(job_resources(job), duration_s=60, gpu_model="H100")
    assert pinned.gpu_model == "Tesla-T4"
    del job["spec"]["template"]["spec"]["nodeSelector"]
    annotated = EnergyInputs.from_job(job_resources(job), duration_s=60, gpu_model="H100")
    assert annotated.gpu_model == "H100"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"gpu_count": -1}, "gpu_count must not be negative", id="negative-gpus"),
        pytest.param({"gpu_count": 1.5}, "gpu_count must be an integer", id="fractional-gpus"),
        pytest.param({"cpu_cores": -2.0}, "cpu_cores must be", id="negative-cpu"),
        pytest.param({"duration_s": float("nan")}, "duration_s must be", id="nan-duration"),
    ],
)
def test_bad_inputs_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(EnergyModelError, match=message):
        inputs(**overrides)


def test_the_estimate_serialises_to_json(catalog: GpuCatalog) -> None:
    data = estimate_energy(inputs(), catalog, EnergySettings()).as_dict()
    assert json.loads(json.dumps(data))["workload"] == "training"


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"pue": 0.9}, id="pue-below-one"),
        pytest.param({"cpu_watts_per_core": -1}, id="negative-cpu-watts"),
        pytest.param({"default_workload": "mining"}, id="unknown-workload"),
        pytest.param({"pue_typo": 1.2}, id="unknown-field"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EnergySettings(**settings)


def test_an_unknown_default_gpu_model_stops_catalog_loading() -> None:
    with pytest.raises(EnergyModelError, match="default_gpu_model: unknown GPU model 'Z9000'"):
        load_catalog(EnergySettings(default_gpu_model="Z9000"))


# --- Profiles files --------------------------------------------------------------------------


def test_the_packaged_profiles_are_the_shared_reference_file_unchanged() -> None:
    shared = SHARED_GPU / "gpu_power_profiles.csv"
    if not shared.exists():
        pytest.skip(f"shared data not present: {shared}")
    assert PACKAGED_CSV.read_bytes() == shared.read_bytes()
    assert len(packaged_profiles()) == len(shared.read_text().splitlines()) - 1


def test_a_profiles_file_replaces_and_adds_gpus(tmp_path: Path) -> None:
    path = tmp_path / "gpus.csv"
    path.write_text(
        HEADER
        + "A100 80GB SXM4,NVIDIA A100-SXM4-80GB,SXM4,80,500,54,67\n"
        + "L40,NVIDIA L40,PCIe,48,300,20,35\n"
    )
    settings = EnergySettings(profiles_file=path)
    catalog = load_catalog(settings)
    assert catalog.resolve("NVIDIA-A100-SXM4-80GB").tdp_w == 500.0
    assert catalog.resolve("l40").tdp_w == 300.0
    assert catalog.resolve("l40s").tdp_w == 350.0
    assert len(catalog.names) == len(packaged_profiles()) + 1


def test_a_user_row_is_the_default_variant_over_packaged_ones(tmp_path: Path) -> None:
    path = tmp_path / "gpus.csv"
    path.write_text(HEADER + "A100 custom PCIe,NVIDIA A100 custom,PCIe,40,275,30,40\n")
    assert load_catalog(EnergySettings(profiles_file=path)).resolve("A100").tdp_w == 275.0


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        pytest.param("gpu,tdp_w\nX,1\n", 1, "missing column", id="missing-columns"),
        pytest.param(HEADER + "X,NVIDIA X,PCIe,24,lots,10,20\n", 2, "'tdp_w': 'lots' is not a",
                     id="tdp-not-a-number"),
        pytest.param(HEADER + "X,NVIDIA X,PCIe,24,0,10,20\n", 2, "not a positive number",
                     id="zero-tdp"),
        pytest.param(HEADER + "X,NVIDIA X,PCIe,24,300,30,20\n", 2, "above idle_w_high",
                     id="idle-low-above-high"),
        pytest.param(HEADER + "X,NVIDIA X,PCIe,24,300,10,400\n", 2, "above tdp_w",
                     id="idle-above-tdp"),
        pytest.param(HEADER + "X,NVIDIA X,PCIe,big,300,10,20\n", 2, "'mem_gb'", id="bad-memory"),
        pytest.param(HEADER + ",NVIDIA X,PCIe,24,300,10,20\n", 2, "'gpu' is empty", id="no-name"),
        pytest.param(HEADER + "X,NVIDIA X,PCIe,24,300,10,20\nX,NVIDIA X,PCIe,24,300,10,20\n", 3,
                     "appears twice", id="duplicate"),
        pytest.param(HEADER + "X,NVIDIA X,PCIe,24,300\n", 2, "wrong number of fields",
                     id="short-row"),
        pytest.param(HEADER, None, "no GPU rows", id="no-rows"),
    ],
)  # fmt: skip
def test_a_bad_profiles_file_names_the_file_line_and_problem(
    tmp_path: Path, text: str, line: int | None, problem: str
) -> None:
    path = tmp_path / "gpus.csv"
    path.write_text(text)
    with pytest.raises(DataFileError, match=problem) as caught:
        read_gpu_profiles(path)
    assert caught.value.path == path
    assert caught.value.line == line


def test_a_missing_profiles_file_is_named() -> None:
    with pytest.raises(DataFileError, match="no such file"):
        load_catalog(EnergySettings(profiles_file=Path("/nonexistent/gpus.csv")))


# --- Calibrations ----------------------------------------------------------------------------


def test_a_calibration_overrides_the_class_fraction_for_its_model_and_class_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "calibration.json"
    write_calibration(path, calibration(model="rtx-3090", average_power_w=280.0))
    settings = EnergySettings(calibration_file=path)
    catalog = load_catalog(settings)

    calibrated = estimate_energy(inputs(gpu_model="RTX 3090"), catalog, settings)
    other_class = estimate_energy(
        inputs(gpu_model="RTX 3090", workload=Workload.BATCH_INFERENCE), catalog, settings
    )
    other_model = estimate_energy(inputs(gpu_model="RTX 4090"), catalog, settings)

    assert (calibrated.gpu_power_w, calibrated.gpu_power_source) == (280.0, "calibration")
    assert other_class.gpu_power_w == pytest.approx(0.79 * 350)
    assert other_model.gpu_power_w == pytest.approx(0.91 * 450)


def test_writing_a_calibration_replaces_the_same_model_and_class(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "calibration.json"
    write_calibration(path, calibration(average_power_w=250.0))
    write_calibration(path, calibration(workload="rendering", average_power_w=300.0))
    saved = write_calibration(path, calibration(average_power_w=260.0))
    assert [(c.workload, c.average_power_w) for c in saved] == [
        (Workload.RENDERING, 300.0),
        (Workload.TRAINING, 260.0),
    ]
    assert read_calibrations(path) == saved


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("{not json", "Invalid JSON", id="not-json"),
        pytest.param('{"version": 2, "calibrations": []}', "version", id="unknown-version"),
        pytest.param(
            '{"calibrations": [{"gpu_name": "x"}]}', r"calibrations\.0\.model", id="missing-field"
        ),
    ],
)
def test_a_bad_calibration_file_names_the_file_and_field(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(text)
    with pytest.raises(DataFileError, match=problem) as caught:
        read_calibrations(path)
    assert caught.value.path == path


def test_a_calibration_of_a_model_missing_from_the_catalog_stops_loading(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    write_calibration(path, calibration(gpu_name="NVIDIA Z9000", model="Z9000"))
    with pytest.raises(DataFileError, match="'Z9000', which is not in the GPU catalog"):
        load_catalog(EnergySettings(calibration_file=path))
