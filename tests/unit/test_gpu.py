"""GPU measurement through NVML (a fake pynvml with a fake clock) and `greenlight profile-gpu`."""

from __future__ import annotations

import argparse
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fake_nvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    FakeClock,
    FakeCommandRun,
    FakeGpu,
    FakeNvml,
)

from webhook.cli import main as cli
from webhook.cli import profile_gpu
from webhook.core.energy import (
    EnergyInputs,
    EnergySettings,
    Workload,
    estimate_energy,
    load_catalog,
    read_calibrations,
)
from webhook.gpu.nvml import (
    GpuDevice,
    GpuReadError,
    GpuUnavailable,
    Nvml,
    TimedRun,
    measure_energy,
)

MEASURED_AT = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)


def open_device(clock: FakeClock, gpu: FakeGpu) -> tuple[Nvml, GpuDevice]:
    nvml = Nvml(FakeNvml(clock, [gpu]))
    nvml.__enter__()
    return nvml, nvml.device(0)


# --- The NVML boundary -----------------------------------------------------------------------


def test_device_readings_are_converted_to_si_units() -> None:
    clock = FakeClock(start=10.0)
    gpu = FakeGpu(power_limit_w=400.0, steps=((0.0, 250.0),), counter_offset_j=0.0)
    with Nvml(FakeNvml(clock, [gpu])) as nvml:
        device = nvml.device(0)
        assert device.name == "NVIDIA GeForce RTX 3090"
        assert device.power_limit_w() == 400.0
        assert device.power_w() == 250.0
        assert device.energy_j() == pytest.approx(2500.0)  # 250 W x 10 s of fake time


@pytest.mark.parametrize(
    ("code", "message"),
    [
        pytest.param(NVML_ERROR_LIBRARY_NOT_FOUND, "no NVIDIA driver", id="no-library"),
        pytest.param(NVML_ERROR_DRIVER_NOT_LOADED, "driver is not loaded", id="driver-not-loaded"),
        pytest.param(NVML_ERROR_NO_PERMISSION, "no permission", id="no-permission"),
    ],
)
def test_nvml_that_cannot_start_is_gpu_unavailable(code: int, message: str) -> None:
    with pytest.raises(GpuUnavailable, match=message), Nvml(FakeNvml(FakeClock(), init_error=code)):
        pass


def test_the_real_pynvml_without_a_driver_is_gpu_unavailable() -> None:
    try:
        with Nvml() as nvml:
            nvml.device_count()
    except GpuUnavailable:
        pass
    else:
        pytest.skip("this machine has a working NVIDIA driver")
    with pytest.raises(GpuUnavailable, match=r"NVIDIA|NVML"), Nvml():
        pass


@pytest.mark.parametrize(
    ("gpus", "index", "expected"),
    [
        pytest.param(1, 1, r"no GPU with index 1: this machine has 1 \(valid: 0\)", id="one-gpu"),
        pytest.param(4, 7, r"has 4 \(valid: 0-3\)", id="four-gpus"),
        pytest.param(0, 0, r"has 0 \(valid: none\)", id="no-gpus"),
    ],
)
def test_a_missing_device_index_is_gpu_unavailable(gpus: int, index: int, expected: str) -> None:
    nvml = Nvml(FakeNvml(FakeClock(), [FakeGpu()] * gpus))
    with nvml, pytest.raises(GpuUnavailable, match=expected):
        nvml.device(index)


def test_nvml_is_shut_down_on_leaving_the_context() -> None:
    fake = FakeNvml(FakeClock(), [FakeGpu()])
    with Nvml(fake):
        pass
    assert fake.shutdowns == 1
    assert not fake.initialised


def test_unsupported_readings_are_none() -> None:
    _, device = open_device(FakeClock(), FakeGpu(energy_counter=False, power_reading=False))
    assert device.energy_j() is None
    assert device.power_w() is None


# --- Measuring -------------------------------------------------------------------------------


def test_energy_counter_measures_a_timed_run_exactly() -> None:
    clock = FakeClock(start=1000.0)
    gpu = FakeGpu(power_limit_w=400.0, steps=((0.0, 100.0), (1005.0, 300.0)))
    _, device = open_device(clock, gpu)

    result = measure_energy(device, TimedRun(10, clock), interval_s=0.5, clock=clock)

    assert result.method == "energy-counter"
    assert result.duration_s == pytest.approx(10.0)
    assert result.energy_j == pytest.approx(100 * 5 + 300 * 5)
    assert result.average_power_w == pytest.approx(200.0)
    assert result.power_fraction == pytest.approx(0.5)
    assert result.peak_power_w == 300.0
    assert result.exit_code == 0
    assert max(clock.slept) <= 0.5


def test_power_polling_integrates_samples_when_there_is_no_energy_counter() -> None:
    clock = FakeClock(start=1000.0)
    gpu = FakeGpu(energy_counter=False, steps=((0.0, 100.0), (1005.0, 300.0)))
    _, device = open_device(clock, gpu)

    result = measure_energy(device, TimedRun(10, clock), interval_s=0.5, clock=clock)

    assert result.method == "power-polling"
    # A trapezoid across one 200 W step sampled every 0.5 s errs by at most 200 x 0.5 / 2 J.
    assert result.energy_j == pytest.approx(2000.0, abs=200 * 0.5 / 2)
    assert result.samples == 21  # every 0.5 s from 0 s to 10 s inclusive


def test_power_polling_is_exact_for_constant_power() -> None:
    clock = FakeClock()
    _, device = open_device(clock, FakeGpu(energy_counter=False, steps=((0.0, 275.0),)))
    result = measure_energy(device, TimedRun(7.3, clock), interval_s=1.0, clock=clock)
    assert result.energy_j == pytest.approx(275.0 * 7.3)


def test_a_gpu_with_neither_counter_nor_power_cannot_be_measured() -> None:
    clock = FakeClock()
    _, device = open_device(clock, FakeGpu(energy_counter=False, power_reading=False))
    with pytest.raises(GpuReadError, match="neither an energy counter nor its power draw"):
        measure_energy(device, TimedRun(5, clock), interval_s=1.0, clock=clock)


def test_an_energy_counter_that_goes_backwards_is_an_error() -> None:
    clock = FakeClock()
    _, device = open_device(clock, FakeGpu(counter_jump_j=-1e6))
    with pytest.raises(GpuReadError, match="went backwards"):
        measure_energy(device, TimedRun(5, clock), interval_s=1.0, clock=clock)


def test_a_failed_reading_stops_the_measured_command() -> None:
    clock = FakeClock()
    _, device = open_device(clock, FakeGpu(fail_power_after=3))
    command = FakeCommandRun(clock, seconds=60)
    with pytest.raises(GpuReadError, match="power draw"):
        measure_energy(device, command, interval_s=1.0, clock=clock)
    assert command.stopped


def test_the_measured_commands_exit_code_is_reported() -> None:
    clock = FakeClock()
    _, device = open_device(clock, FakeGpu())
    result = measure_energy(
        device, FakeCommandRun(clock, 3, exit_code=7), interval_s=1, clock=clock
    )
    assert result.exit_code == 7
    assert result.duration_s == pytest.approx(3.0)


@pytest.mark.parametrize("interval", [0.0, -1.0], ids=["zero", "negative"])
def test_the_interval_must_be_positive(interval: float) -> None:
    clock = FakeClock()
    _, device = open_device(clock, FakeGpu())
    with pytest.raises(ValueError, match="interval must be positive"):
        measure_energy(device, TimedRun(1, clock), interval_s=interval, clock=clock)


# --- The command runner (real child processes) -----------------------------------------------


def test_command_run_returns_the_childs_exit_code() -> None:
    run = profile_gpu.CommandRun([sys.executable, "-c", "raise SystemExit(3)"])
    run.start()
    code = None
    while code is None:
        code = run.wait(5.0)
    assert code == 3


def test_command_run_stop_terminates_a_running_child() -> None:
    run = profile_gpu.CommandRun([sys.executable, "-c", "import time; time.sleep(120)"])
    run.start()
    assert run.wait(0.01) is None
    run.stop()
    assert run.wait(5.0) is not None


# --- `greenlight profile-gpu` ------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    """Only this command's parser, so these tests do not depend on the other commands."""
    parser = argparse.ArgumentParser(prog="greenlight")
    profile_gpu.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["profile-gpu", *argv])


def profile(
    argv: list[str],
    gpu: FakeGpu | None = None,
    *,
    init_error: int | None = None,
    command_seconds: float = 30.0,
    command_exit: int = 0,
) -> tuple[int, str, str]:
    clock = FakeClock()
    fake = FakeNvml(clock, [gpu or FakeGpu()], init_error=init_error)
    out, err = io.StringIO(), io.StringIO()
    code = profile_gpu.execute(
        parse(*argv),
        nvml=Nvml(fake),
        clock=clock,
        out=out,
        err=err,
        command_run=lambda _argv: FakeCommandRun(clock, command_seconds, command_exit),
        now=lambda: MEASURED_AT,
    )
    return code, out.getvalue(), err.getvalue()


def test_profile_gpu_writes_a_calibration_the_energy_model_uses(tmp_path: Path) -> None:
    output = tmp_path / "calibration.json"
    gpu = FakeGpu(power_limit_w=350.0, steps=((0.0, 329.0),))

    code, out, _ = profile(
        ["--workload", "training", "--output", str(output), "--", "python", "train.py"], gpu
    )

    assert code == 0
    assert "0.940 of the 350 W enforced power limit" in out
    [calibration] = read_calibrations(output)
    assert calibration.model == "RTX 3090"
    assert calibration.workload is Workload.TRAINING
    assert calibration.power_fraction == pytest.approx(329 / 350)
    assert calibration.method == "energy-counter"
    assert calibration.command == ["python", "train.py"]
    assert calibration.measured_at == MEASURED_AT

    settings = EnergySettings(calibration_file=output)
    inputs = EnergyInputs("rtx-3090", 1, Workload.TRAINING, 0, 0, 3600)
    estimate = estimate_energy(inputs, load_catalog(settings), settings)
    assert estimate.gpu_power_source == "calibration"
    assert estimate.gpu_power_w == pytest.approx(329.0)


def test_profile_gpu_json_reports_the_measurement(tmp_path: Path) -> None:
    output = tmp_path / "c.json"
    gpu = FakeGpu(power_limit_w=400.0, steps=((0.0, 200.0),), name="NVIDIA A100-SXM4-40GB")

    code, out, _ = profile(
        ["--seconds", "60", "--workload", "batch-inference", "--output", str(output), "--json"],
        gpu,
    )

    assert code == 0
    result = json.loads(out)
    assert result["model"] == "A100 40GB SXM4"
    assert result["energy_j"] == pytest.approx(12_000.0)
    assert result["energy_kwh"] == pytest.approx(12_000 / 3.6e6)
    assert result["duration_s"] == pytest.approx(60.0)
    assert result["average_power_w"] == pytest.approx(200.0)
    assert result["power_fraction"] == pytest.approx(0.5)
    assert result["calibration_file"] == str(output)


def test_profile_gpu_replaces_a_calibration_and_keeps_other_classes(tmp_path: Path) -> None:
    output = tmp_path / "c.json"
    for watts, workload in ((300.0, "training"), (200.0, "batch-inference"), (310.0, "training")):
        gpu = FakeGpu(steps=((0.0, watts),))
        assert (
            profile(["--seconds", "5", "--workload", workload, "--output", str(output)], gpu)[0]
            == 0
        )
    saved = {c.workload: c.average_power_w for c in read_calibrations(output)}
    assert saved == {
        Workload.TRAINING: pytest.approx(310.0),
        Workload.BATCH_INFERENCE: pytest.approx(200.0),
    }


def test_profile_gpu_without_a_workload_reports_but_saves_nothing(tmp_path: Path) -> None:
    output = tmp_path / "c.json"
    code, out, _ = profile(["--seconds", "5", "--output", str(output)])
    assert code == 0
    assert "not saved: no --workload CLASS given" in out
    assert not output.exists()


def test_a_failed_command_is_reported_and_writes_no_profile(tmp_path: Path) -> None:
    output = tmp_path / "c.json"
    code, out, err = profile(
        ["--workload", "training", "--output", str(output), "--", "false"], command_exit=3
    )
    assert code == profile_gpu.EXIT_COMMAND_FAILED
    assert "exited with code 3" in err
    assert "not saved: the command exited with code 3" in out
    assert not output.exists()


def test_a_gpu_missing_from_the_catalog_is_not_saved(tmp_path: Path) -> None:
    output = tmp_path / "c.json"
    gpu = FakeGpu(name="NVIDIA RTX PRO 6000 Blackwell")
    code, out, _ = profile(
        ["--seconds", "5", "--workload", "training", "--output", str(output)], gpu
    )
    assert code == profile_gpu.EXIT_USAGE
    assert "not in the GPU catalog" in out
    assert not output.exists()


def test_a_profiles_file_makes_a_new_gpu_calibratable(tmp_path: Path) -> None:
    profiles = tmp_path / "gpus.csv"
    profiles.write_text(
        "gpu,nvml_name_pattern,form_factor,mem_gb,tdp_w,idle_w_low,idle_w_high\n"
        "RTX PRO 6000,NVIDIA RTX PRO 6000 Blackwell,PCIe,96,600,20,40\n"
    )
    output = tmp_path / "c.json"
    gpu = FakeGpu(name="NVIDIA RTX PRO 6000 Blackwell", power_limit_w=600.0)
    argv = ["--seconds", "5", "--workload", "rendering", "--output", str(output)]
    code, _, _ = profile([*argv, "--profiles", str(profiles)], gpu)
    assert code == 0
    assert read_calibrations(output)[0].model == "RTX PRO 6000"


def test_without_a_driver_profile_gpu_exits_with_one_clear_line(tmp_path: Path) -> None:
    code, out, err = profile(
        ["--seconds", "5", "--output", str(tmp_path / "c.json")],
        init_error=NVML_ERROR_LIBRARY_NOT_FOUND,
    )
    assert code == profile_gpu.EXIT_GPU
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("greenlight profile-gpu: no NVIDIA driver")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param([], "either --seconds N or -- CMD", id="neither"),
        pytest.param(["--seconds", "5", "--", "ls"], "exactly one", id="both"),
        pytest.param(["--seconds", "0"], "--seconds must be positive", id="zero-seconds"),
        pytest.param(["--seconds", "5", "--interval", "0"], "--interval must be", id="interval"),
        pytest.param(["--seconds", "5", "--device", "-1"], "--device must be", id="device"),
        pytest.param(["--seconds", "5", "--workload", "gaming"], "training, batch", id="workload"),
    ],
)
def test_bad_arguments_exit_2_with_the_problem(argv: list[str], message: str) -> None:
    code, _, err = profile(argv)
    assert code == profile_gpu.EXIT_USAGE
    assert message in err


def test_a_command_that_cannot_start_is_reported(tmp_path: Path) -> None:
    clock = FakeClock()
    err = io.StringIO()
    code = profile_gpu.execute(
        parse("--", str(tmp_path / "no-such-program")),
        nvml=Nvml(FakeNvml(clock, [FakeGpu()])),
        clock=clock,
        out=io.StringIO(),
        err=err,
    )
    assert code == profile_gpu.EXIT_COMMAND_FAILED
    assert "cannot run" in err.getvalue()


def test_profile_gpu_is_registered_on_the_cli() -> None:
    assert "profile_gpu" in cli.COMMANDS
    args = parse("--seconds", "2", "--device", "1", "--interval", "0.2", "--json")
    assert args.func is profile_gpu.run
    assert (args.seconds, args.device, args.interval, args.json) == (2.0, 1, 0.2, True)
