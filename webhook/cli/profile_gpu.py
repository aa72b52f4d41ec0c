"""``greenlight profile-gpu``: measure a GPU's real energy and calibrate the energy model.

Runs a command (``-- CMD ...``) or waits ``--seconds N`` while NVML measures one GPU, prints the
energy, duration, average power and its fraction of the enforced power limit, and, given
``--workload CLASS``, records the measurement in a calibration file that the energy model loads
(``EnergySettings.calibration_file``). A failed command, an unknown GPU or a missing workload
class leave the file untouched.

Exit codes: 0 measured (and written when asked), 1 the command failed or could not start,
2 bad arguments, 3 no usable NVIDIA GPU or a failed reading, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from webhook.core.energy import GpuCatalog, Workload
    from webhook.gpu.nvml import Clock, MeasuredRun, Measurement, Nvml

EXIT_OK = 0
EXIT_COMMAND_FAILED = 1
EXIT_USAGE = 2
EXIT_GPU = 3
EXIT_INTERRUPTED = 130
DEFAULT_OUTPUT = Path("gpu-calibration.json")
SHORT_MEASUREMENT_S = 10.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "profile-gpu",
        help="measure a GPU's energy through NVML and calibrate the energy model",
        description="Measure the energy one NVIDIA GPU draws while a command runs (or for\n"
        "--seconds N), report its average power as a fraction of the enforced power limit,\n"
        "and with --workload save it as a calibration that the energy model uses for that\n"
        "GPU model and workload class (EnergySettings.calibration_file).",
        epilog="examples:\n"
        "  greenlight profile-gpu --workload training -- python train.py --epochs 1\n"
        "  greenlight profile-gpu --seconds 60 --json\n\n"
        "exit codes: 0 measured, 1 the command failed, 2 bad arguments, 3 no usable GPU",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--device", type=int, default=0, metavar="N", help="NVML device index (default 0)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        metavar="N",
        help="measure for this long instead of running a command",
    )
    parser.add_argument(
        "--interval",
        type=float,
        metavar="S",
        default=0.1,
        help="seconds between power samples (default 0.1); the energy counter is used "
        "where the GPU has one",
    )
    parser.add_argument(
        "--workload",
        metavar="CLASS",
        help="the workload class the run stands for (training, batch-inference, "
        "online-inference, rendering, cpu); without it nothing is saved",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        default=DEFAULT_OUTPUT,
        help=f"calibration file to add the result to (default {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--profiles",
        type=Path,
        metavar="FILE",
        help="extra GPU profiles CSV (same columns as the packaged one)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, help="-- CMD ARGS...: the command to measure"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from webhook.gpu.nvml import Nvml, SystemClock

    return execute(args, nvml=Nvml(), clock=SystemClock(), out=sys.stdout, err=sys.stderr)


class CommandRun:
    """A child process measured until it exits (stdin/stdout/stderr inherited)."""

    def __init__(self, argv: Sequence[str]) -> None:
        self._argv = list(argv)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(self._argv)  # noqa: S603 - the user's own command

    def wait(self, timeout_s: float) -> int | None:
        if self._process is None:
            raise RuntimeError("CommandRun.wait before start")
        try:
            return self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def execute(
    args: argparse.Namespace,
    *,
    nvml: Nvml,
    clock: Clock,
    out: TextIO,
    err: TextIO,
    command_run: Callable[[Sequence[str]], MeasuredRun] = CommandRun,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """The command with its edges injected (NVML, clock, streams, process runner)."""
    from webhook.core.energy import (
        EnergyModelError,
        GpuCatalog,
        merge_profiles,
        packaged_profiles,
        parse_workload,
        read_gpu_profiles,
    )
    from webhook.gpu.nvml import GpuError, TimedRun, measure_energy

    def fail(code: int, message: str) -> int:
        print(f"greenlight profile-gpu: {message}", file=err)
        return code

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if (args.seconds is None) == (not command):
        return fail(EXIT_USAGE, "give either --seconds N or -- CMD ARGS... (exactly one)")
    if args.seconds is not None and not args.seconds > 0:
        return fail(EXIT_USAGE, f"--seconds must be positive, got {args.seconds}")
    if not args.interval > 0:
        return fail(EXIT_USAGE, f"--interval must be positive, got {args.interval}")
    if args.device < 0:
        return fail(EXIT_USAGE, f"--device must be 0 or more, got {args.device}")
    try:
        workload = None if args.workload is None else parse_workload(args.workload)
        profiles = packaged_profiles()
        if args.profiles is not None:
            profiles = merge_profiles(profiles, read_gpu_profiles(args.profiles))
        catalog = GpuCatalog(profiles)
    except (EnergyModelError, ValueError) as error:
        return fail(EXIT_USAGE, str(error))

    measured: MeasuredRun = (
        TimedRun(args.seconds, clock) if args.seconds is not None else command_run(command)
    )
    try:
        with nvml:
            device = nvml.device(args.device)
            measurement = measure_energy(device, measured, interval_s=args.interval, clock=clock)
    except GpuError as error:
        return fail(EXIT_GPU, str(error))
    except OSError as error:
        return fail(EXIT_COMMAND_FAILED, f"cannot run {command[0]!r}: {error.strerror or error}")
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted: no calibration written")

    return _report_and_save(
        args,
        measurement,
        workload=workload,
        catalog=catalog,
        command=command or None,
        measured_at=now(),
        out=out,
        err=err,
    )


def _report_and_save(
    args: argparse.Namespace,
    measurement: Measurement,
    *,
    workload: Workload | None,
    catalog: GpuCatalog,
    command: list[str] | None,
    measured_at: datetime,
    out: TextIO,
    err: TextIO,
) -> int:
    from webhook.core.datafiles import DataFileError
    from webhook.core.energy import Calibration, write_calibration

    profile = catalog.match(measurement.gpu_name)
    code = EXIT_OK
    not_saved: str | None = None
    if measurement.exit_code != 0:
        code, not_saved = (
            EXIT_COMMAND_FAILED,
            f"the command exited with code {measurement.exit_code}",
        )
    elif workload is None:
        not_saved = "no --workload CLASS given"
    elif measurement.duration_s <= 0 or measurement.energy_j <= 0:
        code, not_saved = EXIT_GPU, "the measurement recorded no energy"
    elif profile is None:
        code = EXIT_USAGE
        not_saved = (
            f"{measurement.gpu_name!r} is not in the GPU catalog: add a row for it to a "
            "profiles file (--profiles, EnergySettings.profiles_file)"
        )

    written: Path | None = None
    if not_saved is None and profile is not None and workload is not None:
        calibration = Calibration(
            gpu_name=measurement.gpu_name,
            model=profile.name,
            workload=workload,
            power_fraction=measurement.power_fraction,
            power_limit_w=measurement.power_limit_w,
            average_power_w=measurement.average_power_w,
            energy_j=measurement.energy_j,
            duration_s=measurement.duration_s,
            measured_at=measured_at,
            method=measurement.method,
            device_index=measurement.device_index,
            command=command,
        )
        try:
            write_calibration(args.output, calibration)
        except (DataFileError, OSError) as error:
            print(f"greenlight profile-gpu: cannot write {args.output}: {error}", file=err)
            code = EXIT_USAGE
            not_saved = f"cannot write {args.output}"
        else:
            written = args.output

    result = _result(measurement, profile.name if profile else None, workload, written, not_saved)
    if args.json:
        print(json.dumps(result, indent=2), file=out)
    else:
        _print_text(result, measurement, out)
    if measurement.exit_code != 0:
        print(
            f"greenlight profile-gpu: the command exited with code {measurement.exit_code}; "
            "no calibration written",
            file=err,
        )
    return code


def _result(
    measurement: Measurement,
    model: str | None,
    workload: Workload | None,
    written: Path | None,
    not_saved: str | None,
) -> dict[str, Any]:
    return {
        "gpu": measurement.gpu_name,
        "device": measurement.device_index,
        "model": model,
        "workload": None if workload is None else workload.value,
        "method": measurement.method,
        "duration_s": measurement.duration_s,
        "energy_j": measurement.energy_j,
        "energy_kwh": measurement.energy_kwh,
        "average_power_w": measurement.average_power_w,
        "power_limit_w": measurement.power_limit_w,
        "power_fraction": measurement.power_fraction,
        "peak_power_w": measurement.peak_power_w,
        "samples": measurement.samples,
        "exit_code": measurement.exit_code,
        "calibration_file": None if written is None else str(written),
        "not_saved": not_saved,
    }


def _print_text(result: dict[str, Any], measurement: Measurement, out: TextIO) -> None:
    model = result["model"] or "not in the catalog"
    lines = [
        f"GPU {measurement.device_index}: {measurement.gpu_name} (catalog: {model})",
        f"duration        {measurement.duration_s:.1f} s",
        f"energy          {measurement.energy_j:.0f} J = {measurement.energy_kwh:.6f} kWh "
        f"({measurement.method})",
        f"average power   {measurement.average_power_w:.1f} W = "
        f"{measurement.power_fraction:.3f} of the {measurement.power_limit_w:.0f} W "
        "enforced power limit",
    ]
    if measurement.peak_power_w is not None:
        lines.append(f"peak power      {measurement.peak_power_w:.1f} W (sampled)")
    if measurement.duration_s < SHORT_MEASUREMENT_S:
        lines.append(f"note: under {SHORT_MEASUREMENT_S:.0f} s, a measurement is noisy")
    if result["calibration_file"]:
        lines.append(
            f"saved as the {result['workload']} calibration of {result['model']} in "
            f"{result['calibration_file']}"
        )
    else:
        lines.append(f"not saved: {result['not_saved']}")
    print("\n".join(lines), file=out)
