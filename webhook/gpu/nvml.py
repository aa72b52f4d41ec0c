"""NVIDIA GPUs through NVML (``pynvml``, package ``nvidia-ml-py``): the only module that talks
to it.

``Nvml`` opens the library (a context manager: init/shutdown) and its devices; ``GpuDevice``
reads a device's name, enforced power limit, total energy counter (mJ since the driver loaded,
Volta and newer) and power draw (mW). ``measure_energy`` measures a run: the energy counter
where the device has one, else power polled every ``interval_s`` and integrated (trapezoids).

Every ``NVMLError`` is wrapped here into ``GpuUnavailable`` (no library, no driver, no such
device, no permission) or ``GpuReadError`` (a reading failed); nothing else sees pynvml.
Tests inject a fake module with the same function names, and a fake clock.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from types import TracebackType
from typing import Any, Literal, Protocol

MeasurementMethod = Literal["energy-counter", "power-polling"]

# NVML return codes (nvml.h); pynvml's NVMLError carries one in ``.value``.
_NOT_SUPPORTED = 3
_NO_PERMISSION = 4
_DRIVER_NOT_LOADED = 9
_LIBRARY_NOT_FOUND = 12
_INVALID_ARGUMENT = 2
_NOT_FOUND = 6
_GPU_IS_LOST = 15


class GpuError(Exception):
    """A GPU that cannot be used or read."""


class GpuUnavailable(GpuError):  # noqa: N818 - the name callers catch
    """No usable NVIDIA GPU: no NVML library or driver, no such device, no permission."""


class GpuReadError(GpuError):
    """A reading from a GPU failed (or a counter did something impossible)."""


def _code(error: Exception) -> int | None:
    value = getattr(error, "value", None)
    return value if isinstance(value, int) else None


def _unavailable_message(error: Exception) -> str:
    code = _code(error)
    if code == _LIBRARY_NOT_FOUND:
        return "no NVIDIA driver: the NVML library (libnvidia-ml.so) was not found"
    if code == _DRIVER_NOT_LOADED:
        return "the NVIDIA driver is not loaded (nvidia-smi would fail too)"
    if code == _NO_PERMISSION:
        return "no permission to access the NVIDIA driver"
    return f"NVML could not start: {error}"


class Clock(Protocol):
    """Monotonic time and sleeping (the system's, or a fake one in tests)."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class Nvml:
    """The NVML library, open while the context is active::

    with Nvml() as nvml:
        device = nvml.device(0)
    """

    def __init__(self, module: Any = None) -> None:
        self._module = module
        self._open = False

    def __enter__(self) -> Nvml:
        if self._module is None:
            try:
                self._module = importlib.import_module("pynvml")
            except ImportError as error:
                raise GpuUnavailable(
                    "the pynvml module (package nvidia-ml-py) is not installed"
                ) from error
        try:
            self._module.nvmlInit()
        except self._module.NVMLError as error:
            raise GpuUnavailable(_unavailable_message(error)) from error
        self._open = True
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._open:
            self._open = False
            with contextlib.suppress(self._module.NVMLError):
                self._module.nvmlShutdown()  # nothing useful to do about a failed shutdown

    @property
    def module(self) -> Any:
        if not self._open:
            raise GpuError("NVML is not open: use `with Nvml() as nvml:`")
        return self._module

    def device_count(self) -> int:
        return int(self._call(self.module.nvmlDeviceGetCount, what="count devices"))

    def device(self, index: int) -> GpuDevice:
        """Device ``index`` (as ``nvidia-smi`` numbers them)."""
        count = self.device_count()
        if not 0 <= index < count:
            raise GpuUnavailable(
                f"no GPU with index {index}: this machine has {count} "
                f"(valid: {'0' if count == 1 else f'0-{count - 1}' if count else 'none'})"
            )
        try:
            handle = self.module.nvmlDeviceGetHandleByIndex(index)
        except self.module.NVMLError as error:
            if _code(error) in (_INVALID_ARGUMENT, _NOT_FOUND, _GPU_IS_LOST, _NO_PERMISSION):
                raise GpuUnavailable(f"cannot open GPU {index}: {error}") from error
            raise GpuReadError(f"cannot open GPU {index}: {error}") from error
        name = self._call(self.module.nvmlDeviceGetName, handle, what=f"read GPU {index}'s name")
        if isinstance(name, bytes):
            name = name.decode("utf-8", errors="replace")
        return GpuDevice(self, index, str(name), handle)

    def _call(self, function: Callable[..., Any], *args: Any, what: str) -> Any:
        try:
            return function(*args)
        except self.module.NVMLError as error:
            raise GpuReadError(f"cannot {what}: {error}") from error


class GpuDevice:
    """One GPU. Readings in SI units (W, J); ``None`` where the device does not support one."""

    def __init__(self, nvml: Nvml, index: int, name: str, handle: Any) -> None:
        self._nvml = nvml
        self.index = index
        self.name = name
        self._handle = handle

    def power_limit_w(self) -> float:
        """The enforced power limit (what the board may draw now), in W."""
        module = self._nvml.module
        milliwatts = self._read(module.nvmlDeviceGetEnforcedPowerLimit, "enforced power limit")
        if milliwatts is None or milliwatts <= 0:
            raise GpuReadError(f"GPU {self.index} ({self.name}) reports no power limit")
        return float(milliwatts) / 1000.0

    def energy_j(self) -> float | None:
        """Total energy since the driver loaded, in J (``None`` before Volta)."""
        module = self._nvml.module
        millijoules = self._read(module.nvmlDeviceGetTotalEnergyConsumption, "energy counter")
        return None if millijoules is None else float(millijoules) / 1000.0

    def power_w(self) -> float | None:
        """Current power draw, in W (``None`` if the device cannot report it)."""
        milliwatts = self._read(self._nvml.module.nvmlDeviceGetPowerUsage, "power draw")
        return None if milliwatts is None else float(milliwatts) / 1000.0

    def _read(self, function: Callable[[Any], Any], what: str) -> Any:
        try:
            return function(self._handle)
        except self._nvml.module.NVMLError as error:
            if _code(error) == _NOT_SUPPORTED:
                return None
            raise GpuReadError(f"cannot read GPU {self.index}'s {what}: {error}") from error


class MeasuredRun(Protocol):
    """What is measured: a command, or just time passing."""

    def start(self) -> None: ...

    def wait(self, timeout_s: float) -> int | None:
        """Wait up to ``timeout_s``; the exit code once finished, else ``None``."""

    def stop(self) -> None:
        """Stop a run that is still going (measurement failed or was interrupted)."""


class TimedRun:
    """A run that lasts ``seconds`` and then 'exits' with 0 (``--seconds``)."""

    def __init__(self, seconds: float, clock: Clock) -> None:
        if seconds <= 0:
            raise ValueError(f"seconds must be positive, got {seconds}")
        self._seconds = seconds
        self._clock = clock
        self._deadline: float | None = None

    def start(self) -> None:
        self._deadline = self._clock.monotonic() + self._seconds

    def wait(self, timeout_s: float) -> int | None:
        if self._deadline is None:
            raise RuntimeError("TimedRun.wait before start")
        remaining = self._deadline - self._clock.monotonic()
        if remaining > 0:
            self._clock.sleep(min(timeout_s, remaining))
        return 0 if self._clock.monotonic() >= self._deadline else None

    def stop(self) -> None:
        self._deadline = self._clock.monotonic()


@dataclass(frozen=True, slots=True)
class Measurement:
    """Energy one GPU drew during a run."""

    device_index: int
    gpu_name: str
    power_limit_w: float
    energy_j: float
    duration_s: float
    method: MeasurementMethod
    samples: int
    peak_power_w: float | None
    exit_code: int

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / 3.6e6

    @property
    def average_power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def power_fraction(self) -> float:
        """Average power as a fraction of the enforced power limit."""
        return self.average_power_w / self.power_limit_w


def measure_energy(
    device: GpuDevice, run: MeasuredRun, *, interval_s: float, clock: Clock
) -> Measurement:
    """Measure ``device`` while ``run`` goes: start, wait in steps of ``interval_s`` (sampling
    power after each), read the energy counter at both ends. Stops the run if a reading fails."""
    if interval_s <= 0:
        raise ValueError(f"interval must be positive, got {interval_s}")
    power_limit = device.power_limit_w()
    energy_start = device.energy_j()
    samples: list[tuple[float, float]] = []

    def sample() -> None:
        power = device.power_w()
        if power is not None:
            samples.append((clock.monotonic(), power))

    started = clock.monotonic()
    sample()
    run.start()
    try:
        while (exit_code := run.wait(interval_s)) is None:
            sample()
        ended = clock.monotonic()
        sample()
        energy_end = device.energy_j() if energy_start is not None else None
    except BaseException:
        run.stop()
        raise
    duration = ended - started

    method: MeasurementMethod
    if energy_start is not None and energy_end is not None:
        if energy_end < energy_start:
            raise GpuReadError(
                f"GPU {device.index}'s energy counter went backwards "
                f"({energy_start:.0f} J -> {energy_end:.0f} J): was the driver reloaded?"
            )
        energy, method = energy_end - energy_start, "energy-counter"
    elif len(samples) >= 2:
        energy = sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in pairwise(samples))
        method = "power-polling"
    else:
        raise GpuReadError(
            f"GPU {device.index} ({device.name}) reports neither an energy counter nor its "
            "power draw"
        )
    return Measurement(
        device_index=device.index,
        gpu_name=device.name,
        power_limit_w=power_limit,
        energy_j=energy,
        duration_s=duration,
        method=method,
        samples=len(samples),
        peak_power_w=max((p for _, p in samples), default=None),
        exit_code=exit_code,
    )
