"""Leak channels as voltage-independent two-state agents.

The classic stochastic Hodgkin–Huxley model keeps the leak as a constant conductance (see
:class:`~stochion.membrane.Patch`); this scheme makes it flicker instead: ``closed ⇄ open`` with constant rates
chosen so that the open probability is ``p_open`` and the occupancy relaxes with time constant ``tau_ms``
(``k_open = p_open / tau_ms``, ``k_close = (1 - p_open) / tau_ms``). Density × unitary conductance × open
probability is the mean leak conductance.
"""

from __future__ import annotations

import math

from ..rates import Constant
from .scheme import MarkovScheme, Transition

__all__ = ["leak_channel"]


def leak_channel(
    *, p_open: float = 0.5, g_unit_pS: float = 2.0, reversal_mV: float = -54.387, tau_ms: float = 1.0,
    name: str = "leak",
) -> MarkovScheme:
    """Two-state voltage-independent leak channel (closed ⇄ open), rates independent of temperature."""
    if not (0.0 < p_open < 1.0):
        raise ValueError(f"leak_channel: p_open must be in (0, 1), got {p_open!r}")
    if not (math.isfinite(tau_ms) and tau_ms > 0):
        raise ValueError(f"leak_channel: tau_ms must be finite and > 0, got {tau_ms!r}")
    return MarkovScheme(
        name=name,
        states=("closed", "open"),
        open_states=("open",),
        transitions=(
            Transition("closed", "open", Constant(p_open / tau_ms)),
            Transition("open", "closed", Constant((1.0 - p_open) / tau_ms)),
        ),
        g_unit_pS=g_unit_pS,
        reversal_mV=reversal_mV,
        ion="leak",
        q10=1.0,
        reference="constant leak of Hodgkin & Huxley (1952) made of flickering agents",
    )
