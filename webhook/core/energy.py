"""The energy model: how many kWh a Job will draw, with a breakdown.

Energy = (GPU power x GPU count + CPU W/core x cores + memory W/GiB x GiB) x duration x PUE.

GPU power is a fraction of the board power limit (TDP) that depends on the workload class, from
measured data (``docs/energy-model.md`` gives the source of every number), or the average power
that ``greenlight profile-gpu`` measured on the cluster's own GPU for that class (a calibration).
GPU models are looked up in a catalog (the packaged ``webhook/data/gpu_power_profiles.csv``, plus
an optional user file with the same columns) by the names people actually write: GPU feature
discovery labels (``NVIDIA-A100-SXM4-80GB``), NVML names (``NVIDIA H100 80GB HBM3``) or short
names (``A100``, ``h100-pcie``, ``rtx-3090``); see ``GpuCatalog.resolve``.

Pure apart from reading the profile and calibration files (``load_catalog``,
``read_gpu_profiles``, ``read_calibrations``, ``write_calibration``).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from webhook.core.datafiles import DataFileError
from webhook.core.resources import WorkloadResources

SECONDS_PER_HOUR = 3600.0
WATTS_PER_KW = 1000.0
PACKAGED_PROFILES = "data/gpu_power_profiles.csv"


class EnergyModelError(ValueError):
    """An estimate that cannot be made (bad input, unknown GPU model)."""


class UnknownGpuModelError(EnergyModelError):
    """A GPU model name that matches no catalog entry; the message lists the known models."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(
            f"unknown GPU model {name!r}; known models: {', '.join(known)} "
            "(short names such as 'A100', 'h100-pcie' or 'rtx-3090', NVML names such as "
            "'NVIDIA H100 80GB HBM3' and GPU feature discovery labels such as "
            "'NVIDIA-A100-SXM4-80GB' all work; add other GPUs with a profiles file)"
        )
        self.name = name
        self.known = tuple(known)


# --- Workload classes -------------------------------------------------------------------------


class Workload(StrEnum):
    """What the GPUs of a Job do, which sets their average power."""

    TRAINING = "training"
    BATCH_INFERENCE = "batch-inference"
    ONLINE_INFERENCE = "online-inference"
    RENDERING = "rendering"
    CPU = "cpu"


WORKLOADS: tuple[str, ...] = tuple(w.value for w in Workload)


def parse_workload(value: str) -> Workload:
    """A workload class from its name (case-insensitive, ``_`` or ``-``)."""
    text = value.strip().lower().replace("_", "-") if isinstance(value, str) else ""
    try:
        return Workload(text)
    except ValueError:
        raise EnergyModelError(
            f"unknown workload class {value!r}; expected one of {', '.join(WORKLOADS)}"
        ) from None


@dataclass(frozen=True, slots=True)
class WorkloadPower:
    """Average GPU power of a workload class as a fraction of the power limit (TDP), or
    ``None`` for a GPU that is allocated but idle (the profile's upper idle power is used)."""

    fraction_of_tdp: float | None
    source: str


WORKLOAD_POWER: Mapping[Workload, WorkloadPower] = {
    Workload.TRAINING: WorkloadPower(
        0.91,
        "midpoint of the 0.85-0.97 of TDP that training typically draws "
        "(shared/data/README.md, gpu/)",
    ),
    Workload.BATCH_INFERENCE: WorkloadPower(
        0.79,
        "median of ML.ENERGY median fractions, large-batch buckets (LLM max_num_seqs > 64, "
        "text-to-image and text-to-video batch_size > 2; H100 and B200)",
    ),
    Workload.ONLINE_INFERENCE: WorkloadPower(
        0.645,
        "median of ML.ENERGY median fractions, small-batch buckets (LLM max_num_seqs <= 64, "
        "text-to-image batch_size <= 2; H100 and B200)",
    ),
    Workload.RENDERING: WorkloadPower(
        0.805,
        "proxy: median of ML.ENERGY median fractions of all text-to-image and text-to-video "
        "buckets (sustained image generation); no direct rendering measurement in the data",
    ),
    Workload.CPU: WorkloadPower(
        None,
        "GPUs allocated to a CPU workload idle: the profile's idle_w_high",
    ),
}


# --- GPU profiles and the catalog -------------------------------------------------------------

PROFILE_COLUMNS: tuple[str, ...] = (
    "gpu",
    "nvml_name_pattern",
    "form_factor",
    "mem_gb",
    "tdp_w",
    "idle_w_low",
    "idle_w_high",
)
"""Columns a profiles file must have (the packaged file's other columns are optional)."""


@dataclass(frozen=True, slots=True)
class GpuProfile:
    """One GPU model: board power limit (TDP) and observed idle power, in watts."""

    name: str
    nvml_name_pattern: str
    form_factor: str
    mem_gb: tuple[float, ...]
    tdp_w: float
    idle_w_low: float
    idle_w_high: float
    idle_w_model_resident: float | None = None
    source: str = "packaged"
    """Where the row came from: ``packaged`` or the path of a user profiles file."""


# Vendor and brand words say nothing about the model; "shared" is GPU feature discovery's
# suffix for time-sliced GPUs and "mega" is GKE's name for H100 SXM on A3 Mega machines.
_IGNORED_WORDS = frozenset({"nvidia", "tesla", "geforce", "quadro", "shared", "mega"})
_SERIES_WORDS = frozenset({"rtx"})


def name_tokens(text: str) -> tuple[str, ...]:
    """Lower-case tokens of a GPU name without vendor words or a MIG suffix:
    ``NVIDIA-A100-SXM4-80GB`` -> ``("a100", "sxm4", "80gb")``, ``rtx3090`` -> ``("rtx", "3090")``.
    """
    text = re.split(r"[-_ ]mig[-_ ]", text.lower())[0]
    tokens: list[str] = []
    for raw in re.split(r"[^a-z0-9*]+", text):
        word = raw
        if not word or word == "*" or word in _IGNORED_WORDS:
            continue
        if re.fullmatch(r"\d+g", word):
            word += "b"
        for series in _SERIES_WORDS:
            if word.startswith(series) and len(word) > len(series):
                tokens.append(series)
                word = word[len(series) :]
        tokens.append(word)
    return tuple(tokens)


def _family(tokens: Sequence[str]) -> str | None:
    return next((t for t in tokens if t not in _SERIES_WORDS), None)


@dataclass(frozen=True, slots=True)
class _Entry:
    profile: GpuProfile
    order: int
    family: str | None
    exact: frozenset[tuple[str, ...]]
    descriptors: frozenset[str]
    sxm: bool


def _entry(profile: GpuProfile, order: int) -> _Entry:
    name = name_tokens(profile.name)
    nvml = name_tokens(profile.nvml_name_pattern)
    words = set(name) | set(nvml) | set(name_tokens(profile.form_factor))
    words |= {f"{m:g}gb" for m in profile.mem_gb}
    sxm = any(w.startswith("sxm") for w in words)
    if sxm:
        words.add("sxm")
    return _Entry(
        profile=profile,
        order=order,
        family=_family(nvml) or _family(name),
        exact=frozenset({name, nvml}),
        descriptors=frozenset(words),
        sxm=sxm,
    )


class GpuCatalog:
    """GPU profiles and calibrations, with name matching.

    ``resolve(name)`` matching, in order: (1) a name equal to a profile's ``gpu`` or
    ``nvml_name_pattern`` once case, separators and vendor words are ignored; (2) otherwise
    every profile whose model token (``a100``, ``h100``, ``3090``, ``a6000`` ...) equals the
    name's and whose name, NVML name, form factor and memory contain all the name's other
    tokens (``sxm``, ``pcie``, ``80gb``, ``hbm3`` ...). When several match, the documented
    default variant wins: a user-file row over a packaged one, then SXM over other form
    factors, then the larger memory, then file order (``A100`` -> ``A100 80GB SXM4``,
    ``H100`` -> ``H100 SXM5 80GB``, ``V100`` -> ``V100 SXM2 16/32GB``).
    """

    def __init__(
        self, profiles: Sequence[GpuProfile], calibrations: Sequence[Calibration] = ()
    ) -> None:
        if not profiles:
            raise EnergyModelError("the GPU catalog is empty")
        self._entries = tuple(_entry(p, i) for i, p in enumerate(profiles))
        self._by_name = {p.name: p for p in profiles}
        calibrated: dict[tuple[str, Workload], Calibration] = {}
        for calibration in calibrations:
            if calibration.model not in self._by_name:
                raise EnergyModelError(
                    f"calibration of {calibration.gpu_name!r} names model "
                    f"{calibration.model!r}, which is not in the GPU catalog"
                )
            calibrated[(calibration.model, calibration.workload)] = calibration
        self._calibrations = calibrated

    @property
    def profiles(self) -> tuple[GpuProfile, ...]:
        return tuple(e.profile for e in self._entries)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.profile.name for e in self._entries)

    @property
    def calibrations(self) -> tuple[Calibration, ...]:
        return tuple(self._calibrations.values())

    def match(self, name: str) -> GpuProfile | None:
        """The profile ``name`` refers to, or ``None`` (see the class docstring)."""
        tokens = name_tokens(name)
        if not tokens:
            return None
        exact = [e for e in self._entries if tokens in e.exact]
        if exact:
            return self._preferred(exact).profile
        family = _family(tokens)
        others = set(tokens) - {family}
        candidates = [e for e in self._entries if e.family == family and others <= e.descriptors]
        return self._preferred(candidates).profile if candidates else None

    def resolve(self, name: str) -> GpuProfile:
        """Like ``match``; an unknown name raises ``UnknownGpuModelError`` listing the models."""
        profile = self.match(name)
        if profile is None:
            raise UnknownGpuModelError(name, self.names)
        return profile

    def calibration(self, model: str, workload: Workload) -> Calibration | None:
        """The calibration measured for catalog model ``model`` and ``workload``, if any."""
        return self._calibrations.get((model, workload))

    @staticmethod
    def _preferred(entries: Sequence[_Entry]) -> _Entry:
        return min(
            entries,
            key=lambda e: (
                e.profile.source == "packaged",
                not e.sxm,
                -max(e.profile.mem_gb, default=0.0),
                e.order,
            ),
        )


def packaged_profiles() -> list[GpuProfile]:
    """The GPU profiles shipped with greenlight (``webhook/data/gpu_power_profiles.csv``)."""
    text = resources.files("webhook").joinpath(PACKAGED_PROFILES).read_text(encoding="utf-8")
    return _parse_profiles(io.StringIO(text), Path("webhook") / PACKAGED_PROFILES, "packaged")


def read_gpu_profiles(path: str | Path) -> list[GpuProfile]:
    """GPU profiles from a CSV with the packaged file's columns (``PROFILE_COLUMNS`` at
    least). ``DataFileError`` names the file, line and problem of a bad file."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _parse_profiles(handle, path, str(path))
    except FileNotFoundError:
        raise DataFileError(path, "no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataFileError(path, f"cannot read: {error}") from error


def _parse_profiles(handle: Iterable[str], path: Path, source: str) -> list[GpuProfile]:
    reader = csv.DictReader(handle)
    header = list(reader.fieldnames or [])
    missing = [c for c in PROFILE_COLUMNS if c not in header]
    if missing:
        raise DataFileError(path, f"missing column(s) {missing}; expected {PROFILE_COLUMNS}", 1)
    profiles: list[GpuProfile] = []
    seen: set[str] = set()
    for index, row in enumerate(reader):
        line = index + 2
        if None in row or any(row.get(c) is None for c in PROFILE_COLUMNS):
            raise DataFileError(path, "wrong number of fields", line)
        name = row["gpu"].strip()
        if not name:
            raise DataFileError(path, "column 'gpu' is empty", line)
        if name in seen:
            raise DataFileError(path, f"GPU {name!r} appears twice", line)
        seen.add(name)
        nvml = row["nvml_name_pattern"].strip()
        if not nvml:
            raise DataFileError(path, "column 'nvml_name_pattern' is empty", line)
        tdp = _watts(path, line, "tdp_w", row["tdp_w"], positive=True)
        idle_low = _watts(path, line, "idle_w_low", row["idle_w_low"])
        idle_high = _watts(path, line, "idle_w_high", row["idle_w_high"])
        if idle_low > idle_high:
            raise DataFileError(
                path, f"idle_w_low {idle_low:g} is above idle_w_high {idle_high:g}", line
            )
        if idle_high > tdp:
            raise DataFileError(path, f"idle_w_high {idle_high:g} is above tdp_w {tdp:g}", line)
        resident = (row.get("idle_w_model_resident") or "").strip()
        profiles.append(
            GpuProfile(
                name=name,
                nvml_name_pattern=nvml,
                form_factor=row["form_factor"].strip(),
                mem_gb=_memory(path, line, row["mem_gb"]),
                tdp_w=tdp,
                idle_w_low=idle_low,
                idle_w_high=idle_high,
                idle_w_model_resident=(
                    _watts(path, line, "idle_w_model_resident", resident) if resident else None
                ),
                source=source,
            )
        )
    if not profiles:
        raise DataFileError(path, "no GPU rows")
    return profiles


def _watts(path: Path, line: int, column: str, text: str, *, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataFileError(path, f"column {column!r}: {text!r} is not a number", line) from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "a positive" if positive else "a non-negative"
        raise DataFileError(path, f"column {column!r}: {text!r} is not {need} number", line)
    return value


def _memory(path: Path, line: int, text: str) -> tuple[float, ...]:
    """``"80"`` or ``"16/32"`` (variants) -> GB values."""
    try:
        values = tuple(float(part) for part in text.split("/"))
    except ValueError:
        raise DataFileError(
            path, f"column 'mem_gb': {text!r} is not a number or numbers like '16/32'", line
        ) from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise DataFileError(path, f"column 'mem_gb': {text!r} must be positive", line)
    return values


def merge_profiles(base: Sequence[GpuProfile], extra: Sequence[GpuProfile]) -> list[GpuProfile]:
    """``base`` with ``extra`` rows replacing same-named ones and the rest appended."""
    replaced = {p.name: p for p in extra}
    merged = [replaced.pop(p.name, p) for p in base]
    return merged + [p for p in extra if p.name in replaced]


# --- Calibrations (written by `greenlight profile-gpu`) -----------------------------------------

CalibrationMethod = Literal["energy-counter", "power-polling"]


class Calibration(BaseModel):
    """One measurement of a GPU model running one workload class."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu_name: str = Field(description="The device name NVML reported.")
    model: str = Field(description="The GPU catalog model the name matched.")
    workload: Workload = Field(description="The workload class the measurement stands for.")
    power_fraction: float = Field(
        gt=0, le=1.5, description="Average power / enforced power limit during the run."
    )
    power_limit_w: float = Field(gt=0, description="The enforced power limit, in W.")
    average_power_w: float = Field(gt=0, description="Measured average power, in W.")
    energy_j: float = Field(ge=0, description="Measured energy, in J.")
    duration_s: float = Field(gt=0, description="Length of the measurement, in s.")
    measured_at: datetime = Field(description="When the measurement ended (UTC).")
    method: CalibrationMethod = Field(
        description="energy-counter (NVML total energy) or power-polling (integrated samples)."
    )
    device_index: int = Field(ge=0, description="The NVML device index measured.")
    command: list[str] | None = Field(
        default=None, description="The command measured; null for a timed measurement."
    )


class CalibrationFile(BaseModel):
    """The calibration file: ``{"version": 1, "calibrations": [...]}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    calibrations: list[Calibration] = Field(default_factory=list)


def read_calibrations(path: str | Path) -> list[Calibration]:
    """The calibrations in ``path``; ``DataFileError`` names the file and the bad field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFileError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataFileError(path, f"cannot read: {error}") from error
    try:
        return CalibrationFile.model_validate_json(text).calibrations
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "file"
        raise DataFileError(path, f"{where}: {first['msg']}") from error


def write_calibration(path: str | Path, calibration: Calibration) -> list[Calibration]:
    """Add ``calibration`` to the file at ``path`` (created if missing), replacing an earlier
    one for the same model and workload; the write is atomic. Returns the file's contents."""
    path = Path(path)
    existing = read_calibrations(path) if path.exists() else []
    kept = [
        c for c in existing if (c.model, c.workload) != (calibration.model, calibration.workload)
    ]
    document = CalibrationFile(calibrations=[*kept, calibration])
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(document.model_dump_json(indent=2) + "\n")
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return document.calibrations


# --- Settings, inputs, estimate ---------------------------------------------------------------


class EnergySettings(BaseModel):
    """How Jobs' energy is estimated (``docs/energy-model.md`` has the sources)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pue: float = Field(
        default=1.58,
        ge=1.0,
        le=3.0,
        description="Power usage effectiveness of the data centre (facility energy / IT "
        "energy). Default 1.58: the global average of the Uptime Institute Global Data Center "
        "Survey 2023. Hyperscale clouds report about 1.1-1.2.",
    )
    default_gpu_model: str = Field(
        default="A100",
        min_length=1,
        description="GPU model for Jobs that request GPUs without naming one (through "
        "nvidia.com/gpu.product or an annotation). Any name the catalog resolves.",
    )
    default_workload: Workload = Field(
        default=Workload.TRAINING,
        description="Workload class for Jobs that do not state one.",
    )
    cpu_watts_per_core: float = Field(
        default=12.0,
        ge=0,
        description="Power per requested CPU core, in W. Default: Green Algorithms' value "
        "for an unknown CPU ('Any', 12 W/core, TDP_cpu.csv).",
    )
    memory_watts_per_gib: float = Field(
        default=0.4,
        ge=0,
        description="Power per requested GiB of memory, in W. Default: Green Algorithms' "
        "0.3725 W/GB (Lannelongue et al. 2021) = 0.40 W/GiB.",
    )
    profiles_file: Path | None = Field(
        default=None,
        description="A CSV of GPU profiles with the packaged file's columns; its rows replace "
        "packaged rows of the same 'gpu' name and add new GPUs.",
    )
    calibration_file: Path | None = Field(
        default=None,
        description="A calibration file written by `greenlight profile-gpu`; a measured "
        "average power replaces the workload class's fraction for that GPU model and class.",
    )


def load_catalog(settings: EnergySettings) -> GpuCatalog:
    """The catalog for ``settings``: packaged profiles, the profiles file, the calibration
    file. Fails early (``EnergyModelError``/``DataFileError``) if ``default_gpu_model`` does not
    resolve or a file is bad, so a misconfiguration stops start-up, not admission."""
    profiles = packaged_profiles()
    if settings.profiles_file is not None:
        profiles = merge_profiles(profiles, read_gpu_profiles(settings.profiles_file))
    calibrations: list[Calibration] = []
    if settings.calibration_file is not None:
        calibrations = read_calibrations(settings.calibration_file)
    catalog = GpuCatalog(profiles)
    resolved = []
    for calibration in calibrations:
        profile = catalog.match(calibration.model)
        if profile is None:
            raise DataFileError(
                settings.calibration_file or Path("calibration"),
                f"calibration of {calibration.gpu_name!r} names model {calibration.model!r}, "
                f"which is not in the GPU catalog ({', '.join(catalog.names)})",
            )
        resolved.append(calibration.model_copy(update={"model": profile.name}))
    catalog = GpuCatalog(profiles, resolved)
    try:
        catalog.resolve(settings.default_gpu_model)
    except UnknownGpuModelError as error:
        raise EnergyModelError(f"settings default_gpu_model: {error}") from error
    return catalog


@dataclass(frozen=True, slots=True)
class EnergyInputs:
    """What one estimate needs. ``gpu_count``, ``cpu_cores`` and ``memory_gib`` are totals over
    the pods that run at once; ``None`` model/workload mean the settings' defaults."""

    gpu_model: str | None
    gpu_count: int
    workload: Workload | None
    cpu_cores: float
    memory_gib: float
    duration_s: float

    def __post_init__(self) -> None:
        if isinstance(self.gpu_count, bool) or not isinstance(self.gpu_count, int):
            raise EnergyModelError(f"gpu_count must be an integer, got {self.gpu_count!r}")
        if self.gpu_count < 0:
            raise EnergyModelError(f"gpu_count must not be negative, got {self.gpu_count}")
        for name in ("cpu_cores", "memory_gib", "duration_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise EnergyModelError(f"{name} must be a finite, non-negative number: {value}")

    @classmethod
    def from_job(
        cls,
        resources: WorkloadResources,
        *,
        duration_s: float,
        workload: Workload | None = None,
        gpu_model: str | None = None,
    ) -> EnergyInputs:
        """Inputs for a Job: the GPU product its pods are pinned to (node selector/affinity)
        wins over ``gpu_model`` (an annotation), which wins over the settings' default."""
        return cls(
            gpu_model=resources.gpu_product or gpu_model,
            gpu_count=resources.gpu_count,
            workload=workload,
            cpu_cores=resources.cpu_cores,
            memory_gib=resources.memory_gib,
            duration_s=duration_s,
        )


GpuPowerSource = Literal["workload-class", "calibration", "idle", "none"]


@dataclass(frozen=True, slots=True)
class EnergyEstimate:
    """An estimate and everything it was made from. kWh values add up:
    ``energy_kwh = gpu_kwh + cpu_kwh + memory_kwh + facility_overhead_kwh``."""

    energy_kwh: float
    gpu_kwh: float
    cpu_kwh: float
    memory_kwh: float
    facility_overhead_kwh: float
    average_power_w: float
    """Facility-level average power (IT power x PUE): ``energy_kwh`` spread over the run."""
    it_power_w: float
    gpu_power_w: float
    """Average power of one GPU."""
    gpu_power_source: GpuPowerSource
    gpu_model: str | None
    """The catalog model used, or ``None`` when the Job has no GPUs."""
    gpu_tdp_w: float | None
    gpu_count: int
    workload: Workload
    cpu_cores: float
    memory_gib: float
    duration_s: float
    pue: float
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the workload as its string value)."""
        data = asdict(self)
        data["workload"] = self.workload.value
        data["notes"] = list(self.notes)
        return data


def estimate_energy(
    inputs: EnergyInputs, catalog: GpuCatalog, settings: EnergySettings
) -> EnergyEstimate:
    """Energy of a run of ``inputs.duration_s`` seconds, with its breakdown."""
    workload = inputs.workload or settings.default_workload
    notes: list[str] = []
    gpu_model: str | None = None
    gpu_tdp: float | None = None
    gpu_power = 0.0
    source: GpuPowerSource = "none"
    if inputs.gpu_count > 0:
        requested = inputs.gpu_model or settings.default_gpu_model
        profile = catalog.resolve(requested)
        gpu_model, gpu_tdp = profile.name, profile.tdp_w
        if inputs.gpu_model is None:
            notes.append(f"GPU model not stated: default {settings.default_gpu_model!r}")
        calibration = catalog.calibration(profile.name, workload)
        class_power = WORKLOAD_POWER[workload]
        if calibration is not None:
            gpu_power, source = calibration.average_power_w, "calibration"
            notes.append(
                f"calibrated on {calibration.gpu_name} at {calibration.measured_at.isoformat()}"
            )
        elif class_power.fraction_of_tdp is None:
            gpu_power, source = profile.idle_w_high, "idle"
        else:
            gpu_power, source = class_power.fraction_of_tdp * profile.tdp_w, "workload-class"

    gpu_w = gpu_power * inputs.gpu_count
    cpu_w = settings.cpu_watts_per_core * inputs.cpu_cores
    memory_w = settings.memory_watts_per_gib * inputs.memory_gib
    it_power = gpu_w + cpu_w + memory_w
    hours = inputs.duration_s / SECONDS_PER_HOUR
    gpu_kwh = gpu_w * hours / WATTS_PER_KW
    cpu_kwh = cpu_w * hours / WATTS_PER_KW
    memory_kwh = memory_w * hours / WATTS_PER_KW
    overhead_kwh = (gpu_kwh + cpu_kwh + memory_kwh) * (settings.pue - 1.0)
    return EnergyEstimate(
        energy_kwh=gpu_kwh + cpu_kwh + memory_kwh + overhead_kwh,
        gpu_kwh=gpu_kwh,
        cpu_kwh=cpu_kwh,
        memory_kwh=memory_kwh,
        facility_overhead_kwh=overhead_kwh,
        average_power_w=it_power * settings.pue,
        it_power_w=it_power,
        gpu_power_w=gpu_power,
        gpu_power_source=source,
        gpu_model=gpu_model,
        gpu_tdp_w=gpu_tdp,
        gpu_count=inputs.gpu_count,
        workload=workload,
        cpu_cores=inputs.cpu_cores,
        memory_gib=inputs.memory_gib,
        duration_s=inputs.duration_s,
        pue=settings.pue,
        notes=tuple(notes),
    )
