"""Stimulus protocols as piecewise-constant schedules of current or voltage clamp.

A protocol compiles to a :class:`Schedule`: consecutive segments, each under a constant injected current (pA)
or a voltage clamp (mV). The kernels run a schedule directly; the simpy experiment layer builds on the same
segments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .membrane import uA_per_cm2_to_pA
from .rates import VALIDATION_RANGE_MV

__all__ = ["Schedule", "CurrentStep", "VoltageStep", "MODE_CURRENT", "MODE_VOLTAGE"]

MODE_CURRENT = 0
MODE_VOLTAGE = 1


@dataclass(frozen=True, eq=False)
class Schedule:
    """Segments ``[t_end[i-1], t_end[i])`` (``t_end[-1]`` is the stop time) with a mode and a value each.

    ``mode`` is ``MODE_CURRENT`` (value = injected current, pA) or ``MODE_VOLTAGE`` (value = clamp, mV).
    """

    t_end_ms: np.ndarray
    mode: np.ndarray
    value: np.ndarray

    def __post_init__(self):
        t = np.ascontiguousarray(self.t_end_ms, dtype=float)
        m = np.ascontiguousarray(self.mode, dtype=np.int64)
        v = np.ascontiguousarray(self.value, dtype=float)
        if not (t.ndim == m.ndim == v.ndim == 1 and t.size == m.size == v.size and t.size > 0):
            raise ValueError("Schedule: t_end_ms, mode and value must be 1-D arrays of the same non-zero length")
        if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0) or t[0] <= 0:
            raise ValueError(f"Schedule.t_end_ms must be finite, > 0 and strictly increasing, got {t.tolist()}")
        if not np.all(np.isin(m, (MODE_CURRENT, MODE_VOLTAGE))):
            raise ValueError(f"Schedule.mode must hold {MODE_CURRENT} (current) or {MODE_VOLTAGE} (voltage clamp)")
        if not np.all(np.isfinite(v)):
            bad = v[~np.isfinite(v)][0]
            raise ValueError(f"Schedule.value must be finite (pA or mV), got {bad!r}")
        lo, hi = VALIDATION_RANGE_MV
        clamp = v[m == MODE_VOLTAGE]
        if clamp.size and (clamp.min() < lo or clamp.max() > hi):
            raise ValueError(f"voltage-clamp levels must lie in {lo}..{hi} mV, got {clamp.min()}..{clamp.max()} mV")
        object.__setattr__(self, "t_end_ms", t)
        object.__setattr__(self, "mode", m)
        object.__setattr__(self, "value", v)

    @property
    def t_stop_ms(self) -> float:
        return float(self.t_end_ms[-1])

    @classmethod
    def from_breakpoints(cls, t_stop_ms: float, breakpoints) -> "Schedule":
        """Build from ``[(t_start_ms, mode, value), ...]`` (first at 0), cut at ``t_stop_ms``; merges repeats.

        Of breakpoints at the same time, the later in the list wins.
        """
        pts = sorted(((float(t), int(m), float(v)) for t, m, v in breakpoints), key=lambda p: p[0])
        starts = [p for p in pts if p[0] < t_stop_ms]
        t_end, mode, value = [], [], []
        for i, (t0, m, v) in enumerate(starts):
            t1 = starts[i + 1][0] if i + 1 < len(starts) else t_stop_ms
            if t1 <= t0:
                continue
            if mode and mode[-1] == m and value[-1] == v:
                t_end[-1] = t1
            else:
                t_end.append(t1)
                mode.append(m)
                value.append(v)
        return cls(np.array(t_end), np.array(mode), np.array(value))


def _check_time(owner, name, value, allow_inf=False):
    v = float(value)
    if math.isnan(v) or v < 0 or (math.isinf(v) and not allow_inf):
        allowed = ">= 0 (inf allowed)" if allow_inf else "finite and >= 0"
        raise ValueError(f"{owner}.{name} must be {allowed}, got {value!r}")
    return v


@dataclass(frozen=True)
class CurrentStep:
    """A rectangular current step: ``amplitude`` from ``start_ms`` for ``duration_ms`` (default: to the end).

    Give the amplitude either as ``amplitude_pA`` or as a density ``amplitude_uA_cm2`` (scaled by the patch
    area), not both. ``holding_pA`` flows outside the step.
    """

    amplitude_pA: float | None = None
    amplitude_uA_cm2: float | None = None
    start_ms: float = 0.0
    duration_ms: float = math.inf
    holding_pA: float = 0.0

    def __post_init__(self):
        if (self.amplitude_pA is None) == (self.amplitude_uA_cm2 is None):
            raise ValueError("CurrentStep: give exactly one of amplitude_pA and amplitude_uA_cm2")
        amp = self.amplitude_pA if self.amplitude_pA is not None else self.amplitude_uA_cm2
        if not math.isfinite(float(amp)):
            name = "amplitude_pA" if self.amplitude_pA is not None else "amplitude_uA_cm2"
            raise ValueError(f"CurrentStep.{name} must be finite, got {amp!r}")
        if not math.isfinite(float(self.holding_pA)):
            raise ValueError(f"CurrentStep.holding_pA must be finite, got {self.holding_pA!r}")
        _check_time("CurrentStep", "start_ms", self.start_ms)
        _check_time("CurrentStep", "duration_ms", self.duration_ms, allow_inf=True)

    def amplitude_in_pA(self, area_um2: float) -> float:
        if self.amplitude_pA is not None:
            return float(self.amplitude_pA)
        return uA_per_cm2_to_pA(self.amplitude_uA_cm2, area_um2)

    def schedule(self, t_stop_ms: float, area_um2: float) -> Schedule:
        amp = self.amplitude_in_pA(area_um2)
        pts = [(0.0, MODE_CURRENT, self.holding_pA), (self.start_ms, MODE_CURRENT, amp)]
        end = self.start_ms + self.duration_ms
        if end < t_stop_ms:
            pts.append((end, MODE_CURRENT, self.holding_pA))
        return Schedule.from_breakpoints(t_stop_ms, pts)


@dataclass(frozen=True)
class VoltageStep:
    """Voltage clamp: ``holding_mV``, then ``step_mV`` from ``start_ms`` for ``duration_ms``, then holding."""

    step_mV: float
    holding_mV: float = -65.0
    start_ms: float = 0.0
    duration_ms: float = math.inf

    def __post_init__(self):
        lo, hi = VALIDATION_RANGE_MV
        for name in ("step_mV", "holding_mV"):
            v = float(getattr(self, name))
            if not (lo <= v <= hi):
                raise ValueError(f"VoltageStep.{name} must lie in {lo}..{hi} mV, got {v!r}")
        _check_time("VoltageStep", "start_ms", self.start_ms)
        _check_time("VoltageStep", "duration_ms", self.duration_ms, allow_inf=True)

    def schedule(self, t_stop_ms: float, area_um2: float) -> Schedule:
        pts = [(0.0, MODE_VOLTAGE, self.holding_mV), (self.start_ms, MODE_VOLTAGE, self.step_mV)]
        end = self.start_ms + self.duration_ms
        if end < t_stop_ms:
            pts.append((end, MODE_VOLTAGE, self.holding_mV))
        return Schedule.from_breakpoints(t_stop_ms, pts)
