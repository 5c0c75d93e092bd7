"""Declarative Markov schemes of single ion channels.

A :class:`MarkovScheme` names the states of one channel, which of them conduct, and the transitions between
them, each a multiplicity times a voltage-dependent :mod:`~stochion.rates` law. Schemes are validated when
they are made, so that nothing downstream has to guess: every error names the field, the value and what is
allowed.

References
----------
Colquhoun D, Hawkes AG (1981) Proc R Soc Lond B 211:205-235. doi:10.1098/rspb.1981.0003
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from ..rates import LigandBinding, RateLaw, VALIDATION_RANGE_MV, voltage_grid_mV

__all__ = ["Transition", "MarkovScheme", "gate_scheme", "GateParticle"]


@dataclass(frozen=True)
class Transition:
    """One transition ``source -> target`` with rate ``multiplicity * rate(V)`` (1/ms)."""

    source: str
    target: str
    rate: RateLaw
    multiplicity: float = 1.0

    def __post_init__(self):
        if not isinstance(self.rate, RateLaw):
            raise ValueError(
                f"Transition {self.source}->{self.target}: rate must be a stochion.rates law, got {self.rate!r}"
            )
        if not (math.isfinite(self.multiplicity) and self.multiplicity > 0):
            raise ValueError(
                f"Transition {self.source}->{self.target}: multiplicity must be finite and > 0, "
                f"got {self.multiplicity!r}"
            )
        if self.source == self.target:
            raise ValueError(f"Transition {self.source}->{self.target}: source and target must differ")

    def rate_per_ms(self, V_mV):
        """Rate of this transition at ``V_mV`` at the scheme's reference temperature (1/ms)."""
        return self.multiplicity * self.rate.evaluate(V_mV)


@dataclass(frozen=True)
class MarkovScheme:
    """A continuous-time Markov scheme of one channel type.

    Parameters
    ----------
    name : str
        Channel type name, used in column names (``n_open_<name>``, ``I_<name>_pA``): letters, digits, ``_``.
    states : tuple of str
        State names, in the order used by every array of the package.
    open_states : tuple of str
        Conducting states; each conducts ``g_unit_pS``.
    transitions : tuple of Transition
        Directed transitions; at most one per ordered pair of states.
    g_unit_pS : float
        Unitary (single-channel) conductance, pS.
    reversal_mV : float
        Reversal potential of the current through the channel, mV.
    ion : str, optional
        The permeant ion ("Na", "K", ...) for labels.
    q10 : float
        Temperature coefficient of all rates.
    reference_celsius : float
        Temperature at which the rate laws hold, °C.
    reference : str
        Literature reference (with DOI) of the model.
    """

    name: str
    states: tuple
    open_states: tuple
    transitions: tuple
    g_unit_pS: float
    reversal_mV: float
    ion: str = ""
    q10: float = 3.0
    reference_celsius: float = 6.3
    reference: str = ""
    _index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "states", tuple(self.states))
        object.__setattr__(self, "open_states", tuple(self.open_states))
        object.__setattr__(self, "transitions", tuple(self.transitions))
        where = f"MarkovScheme {self.name!r}"
        if not (isinstance(self.name, str) and self.name.isidentifier()):
            raise ValueError(f"MarkovScheme.name must be an identifier (letters, digits, _), got {self.name!r}")
        if len(self.states) < 2:
            raise ValueError(f"{where}: states needs at least 2 states, got {self.states!r}")
        dup = sorted({s for s in self.states if self.states.count(s) > 1})
        if dup:
            raise ValueError(f"{where}: duplicate states {dup}")
        for s in self.states:
            if not (isinstance(s, str) and s):
                raise ValueError(f"{where}: state names must be non-empty strings, got {s!r}")
        index = {s: i for i, s in enumerate(self.states)}
        object.__setattr__(self, "_index", index)
        if not self.open_states:
            raise ValueError(f"{where}: open_states is empty; a channel needs at least one conducting state")
        for s in self.open_states:
            if s not in index:
                raise ValueError(f"{where}: open state {s!r} is not one of the states {list(self.states)}")
        if len(set(self.open_states)) != len(self.open_states):
            raise ValueError(f"{where}: duplicate open states {self.open_states!r}")
        for name, value, lo in (("g_unit_pS", self.g_unit_pS, 0.0), ("q10", self.q10, 0.0)):
            if not (math.isfinite(value) and value > lo):
                raise ValueError(f"{where}: {name} must be finite and > 0, got {value!r}")
        for name, value in (("reversal_mV", self.reversal_mV), ("reference_celsius", self.reference_celsius)):
            if not math.isfinite(value):
                raise ValueError(f"{where}: {name} must be finite, got {value!r}")
        if not self.transitions:
            raise ValueError(f"{where}: transitions is empty")
        pairs = set()
        grid = voltage_grid_mV()
        for tr in self.transitions:
            if not isinstance(tr, Transition):
                raise ValueError(f"{where}: transitions must be Transition objects, got {tr!r}")
            for end in (tr.source, tr.target):
                if end not in index:
                    raise ValueError(
                        f"{where}: transition {tr.source}->{tr.target} names unknown state {end!r}; "
                        f"states are {list(self.states)}"
                    )
            if (tr.source, tr.target) in pairs:
                raise ValueError(f"{where}: duplicate transition {tr.source}->{tr.target}")
            pairs.add((tr.source, tr.target))
            with np.errstate(over="ignore", invalid="ignore"):
                r = np.asarray(tr.rate.evaluate(grid), dtype=float)
            bad = ~np.isfinite(r) | (r < 0)
            if bad.any():
                V_bad = grid[np.argmax(bad)]
                lo, hi = VALIDATION_RANGE_MV
                raise ValueError(
                    f"{where}: rate of {tr.source}->{tr.target} is {float(r[np.argmax(bad)])!r} at V = {V_bad} mV; "
                    f"rates must be finite and >= 0 over {lo}..{hi} mV"
                )
        unreachable = self._unreachable()
        if unreachable:
            raise ValueError(
                f"{where}: states {unreachable} cannot be reached from every other state (the scheme must be "
                "irreducible, so that it has one stationary distribution)"
            )

    def _unreachable(self) -> list:
        adj = {s: set() for s in self.states}
        radj = {s: set() for s in self.states}
        for tr in self.transitions:
            adj[tr.source].add(tr.target)
            radj[tr.target].add(tr.source)

        def reach(graph):
            seen, todo = {self.states[0]}, [self.states[0]]
            while todo:
                for nxt in graph[todo.pop()]:
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
            return seen

        both = reach(adj) & reach(radj)
        return [s for s in self.states if s not in both]

    # -- derived quantities -------------------------------------------------------------------------------
    @property
    def n_states(self) -> int:
        return len(self.states)

    def index(self, state: str) -> int:
        """Position of ``state`` in :attr:`states`."""
        try:
            return self._index[state]
        except KeyError:
            raise ValueError(f"MarkovScheme {self.name!r}: unknown state {state!r}; states are {list(self.states)}")

    @property
    def open_mask(self) -> np.ndarray:
        """Boolean array, True for conducting states."""
        return np.array([s in self.open_states for s in self.states])

    def temperature_factor(self, temperature_celsius: float) -> float:
        """Q10 factor ``q10 ** ((T - reference_celsius) / 10)`` applied to every rate."""
        return self.q10 ** ((temperature_celsius - self.reference_celsius) / 10.0)

    @property
    def ligands(self) -> tuple:
        """Names of the ligands whose binding drives transitions of this scheme."""
        return tuple(sorted({tr.rate.ligand for tr in self.transitions if isinstance(tr.rate, LigandBinding)}))

    def generator(self, V_mV, temperature_celsius: float | None = None, ligand_mM: float = 0.0) -> np.ndarray:
        """Generator matrix ``Q`` (1/ms) at ``V_mV``: ``Q[i, j]`` is the rate i -> j, rows sum to 0.

        ``V_mV`` may be an array; the result then has shape ``V.shape + (n, n)``. Ligand-binding transitions
        are scaled by ``ligand_mM`` (mM).
        """
        T = self.reference_celsius if temperature_celsius is None else temperature_celsius
        phi = self.temperature_factor(T)
        V = np.asarray(V_mV, dtype=float)
        Q = np.zeros(V.shape + (self.n_states, self.n_states))
        for tr in self.transitions:
            scale = ligand_mM if isinstance(tr.rate, LigandBinding) else 1.0
            Q[..., self._index[tr.source], self._index[tr.target]] += phi * scale * tr.rate_per_ms(V)
        idx = np.arange(self.n_states)
        Q[..., idx, idx] = -Q.sum(axis=-1)
        return Q

    def stationary(self, V_mV, temperature_celsius: float | None = None, ligand_mM: float = 0.0) -> np.ndarray:
        """Stationary occupancy probabilities at fixed voltage(s): solves ``p Q = 0`` with ``sum p = 1``.

        ``V_mV`` may be an array; the result then has shape ``V.shape + (n,)``.
        """
        Q = self.generator(V_mV, temperature_celsius, ligand_mM)
        # p Q = 0 is rank n-1 for an irreducible scheme; replace one equation by the normalisation
        A = np.swapaxes(Q, -1, -2).copy()
        A[..., -1, :] = 1.0
        b = np.zeros(Q.shape[:-1])
        b[..., -1] = 1.0
        p = np.linalg.solve(A, b[..., None])[..., 0]
        p = np.clip(p, 0.0, None)
        return p / p.sum(axis=-1, keepdims=True)

    def open_probability(self, V_mV, temperature_celsius: float | None = None):
        """Stationary probability of being in a conducting state at ``V_mV`` (scalar or array)."""
        p = self.stationary(V_mV, temperature_celsius)[..., self.open_mask].sum(axis=-1)
        return float(p) if np.ndim(p) == 0 else p


@dataclass(frozen=True)
class GateParticle:
    """``count`` identical independent two-state gates with opening rate ``alpha`` and closing ``beta``."""

    name: str
    count: int
    alpha: RateLaw
    beta: RateLaw

    def __post_init__(self):
        if not (isinstance(self.count, int) and self.count >= 1):
            raise ValueError(f"GateParticle {self.name!r}: count must be an integer >= 1, got {self.count!r}")
        if not (isinstance(self.name, str) and self.name.isidentifier()):
            raise ValueError(f"GateParticle.name must be an identifier, got {self.name!r}")


def gate_scheme(name: str, particles, *, g_unit_pS: float, reversal_mV: float, **kwargs) -> MarkovScheme:
    """The Markov scheme equivalent to Hodgkin–Huxley gate particles.

    ``k`` particles of a gate give ``k + 1`` states (how many are open); a state of the channel is one such
    count per gate, named like ``m2h1``. Opening of one more particle has multiplicity ``k - j`` times
    ``alpha``, closing ``j`` times ``beta``. The only conducting state has every particle open.

    References
    ----------
    Fitzhugh R (1965) J Cell Comp Physiol 66:111-117. doi:10.1002/jcp.1030660518
    Skaugen E, Walløe L (1979) Acta Physiol Scand 107:343-363. doi:10.1111/j.1748-1716.1979.tb06486.x
    """
    particles = tuple(particles)
    counts = [range(p.count + 1) for p in particles]

    def label(combo):
        return "".join(f"{p.name}{j}" for p, j in zip(particles, combo))

    combos = list(itertools.product(*counts))
    transitions = []
    for combo in combos:
        for g, p in enumerate(particles):
            j = combo[g]
            if j < p.count:
                up = combo[:g] + (j + 1,) + combo[g + 1 :]
                transitions.append(Transition(label(combo), label(up), p.alpha, float(p.count - j)))
            if j > 0:
                down = combo[:g] + (j - 1,) + combo[g + 1 :]
                transitions.append(Transition(label(combo), label(down), p.beta, float(j)))
    all_open = label(tuple(p.count for p in particles))
    return MarkovScheme(
        name=name,
        states=tuple(label(c) for c in combos),
        open_states=(all_open,),
        transitions=tuple(transitions),
        g_unit_pS=g_unit_pS,
        reversal_mV=reversal_mV,
        **kwargs,
    )
