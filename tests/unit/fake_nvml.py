"""A fake of the pynvml module (same function names, error class and codes) driven by a fake
clock: a GPU's power is a step function of fake time and its energy counter is the exact
integral of that power, so tests measure known energies without real GPUs or real sleeping."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_UNKNOWN = 999


class FakeNvmlError(Exception):
    """Like ``pynvml.NVMLError``: carries the NVML return code in ``value``."""

    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


class FakeClock:
    """Monotonic fake time; ``sleep`` advances it instantly."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class FakeGpu:
    """A GPU whose power is ``steps``: (from this fake time on, watts), the first from -inf."""

    name: str = "NVIDIA GeForce RTX 3090"
    power_limit_w: float = 350.0
    steps: Sequence[tuple[float, float]] = ((0.0, 300.0),)
    energy_counter: bool = True
    power_reading: bool = True
    counter_offset_j: float = 123_456.0
    fail_power_after: int | None = None
    """Raise an NVML error on this many-th power read (1-based), to test failures mid-run."""
    counter_jump_j: float = 0.0
    """Added to the counter after the first read (negative: a counter that goes backwards)."""
    power_reads: int = field(default=0, init=False)
    counter_reads: int = field(default=0, init=False)

    def power_at(self, t: float) -> float:
        watts = self.steps[0][1]
        for start, value in self.steps:
            if t >= start:
                watts = value
        return watts

    def energy_until(self, t: float) -> float:
        """Integral of power from fake time 0 to ``t`` (exact for the step function)."""
        total = 0.0
        points = [*self.steps, (float("inf"), 0.0)]
        for (start, watts), (next_start, _) in itertools.pairwise(points):
            lo, hi = max(start, 0.0), min(next_start, t)
            if hi > lo:
                total += watts * (hi - lo)
        return total


class FakeNvml:
    """Module-like object with pynvml's function names."""

    NVMLError = FakeNvmlError

    def __init__(
        self, clock: FakeClock, gpus: Sequence[FakeGpu] = (), init_error: int | None = None
    ) -> None:
        self.clock = clock
        self.gpus = list(gpus)
        self.init_error = init_error
        self.initialised = False
        self.shutdowns = 0

    def _check(self) -> None:
        if not self.initialised:
            raise FakeNvmlError(NVML_ERROR_UNINITIALIZED)

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise FakeNvmlError(self.init_error)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self._check()
        self.initialised = False
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        self._check()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._check()
        if not 0 <= index < len(self.gpus):
            raise FakeNvmlError(NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[index]

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:
        self._check()
        return handle.name

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeGpu) -> int:
        self._check()
        return round(handle.power_limit_w * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeGpu) -> int:
        self._check()
        if not handle.energy_counter:
            raise FakeNvmlError(NVML_ERROR_NOT_SUPPORTED)
        handle.counter_reads += 1
        jump = handle.counter_jump_j if handle.counter_reads > 1 else 0.0
        joules = handle.counter_offset_j + handle.energy_until(self.clock.now) + jump
        return round(joules * 1000)

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        self._check()
        if not handle.power_reading:
            raise FakeNvmlError(NVML_ERROR_NOT_SUPPORTED)
        handle.power_reads += 1
        if handle.fail_power_after is not None and handle.power_reads >= handle.fail_power_after:
            raise FakeNvmlError(NVML_ERROR_UNKNOWN)
        return round(handle.power_at(self.clock.now) * 1000)


class FakeCommandRun:
    """A measured command that lasts ``seconds`` of fake time and exits with ``exit_code``."""

    def __init__(self, clock: FakeClock, seconds: float, exit_code: int = 0) -> None:
        self.clock = clock
        self.seconds = seconds
        self.exit_code = exit_code
        self.started_at: float | None = None
        self.stopped = False

    def start(self) -> None:
        self.started_at = self.clock.monotonic()

    def wait(self, timeout_s: float) -> int | None:
        assert self.started_at is not None
        remaining = self.started_at + self.seconds - self.clock.now
        if remaining > 0:
            self.clock.sleep(min(timeout_s, remaining))
        return self.exit_code if self.clock.now >= self.started_at + self.seconds else None

    def stop(self) -> None:
        self.stopped = True
