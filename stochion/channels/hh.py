"""Hodgkin–Huxley sodium and potassium channels as Markov schemes of gate particles.

The squid-axon rate laws of Hodgkin & Huxley (1952), in the modern sign convention (V in mV, rest near -65 mV),
at their reference temperature of 6.3 °C and with Q10 = 3. The Na+ channel is m³h (8 states, open ``m3h1``),
the K+ channel n⁴ (5 states, open ``n4``); 20 pS unitary conductance for both, as in the stochastic HH
literature.

References
----------
Hodgkin AL, Huxley AF (1952) J Physiol 117:500-544. doi:10.1113/jphysiol.1952.sp004764
Skaugen E, Walløe L (1979) Acta Physiol Scand 107:343-363. doi:10.1111/j.1748-1716.1979.tb06486.x
Goldwyn JH, Shea-Brown E (2011) PLoS Comput Biol 7:e1002247. doi:10.1371/journal.pcbi.1002247
"""

from __future__ import annotations

from ..rates import Exponential, Linoid, Sigmoid
from .scheme import GateParticle, MarkovScheme, gate_scheme

__all__ = ["hh_sodium", "hh_potassium", "HH_REFERENCE"]

HH_REFERENCE = "Hodgkin AL, Huxley AF (1952) J Physiol 117:500-544. doi:10.1113/jphysiol.1952.sp004764"

# alpha_m = 0.1 (V+40) / (1 - exp(-(V+40)/10)),  beta_m = 4 exp(-(V+65)/18)
ALPHA_M = Linoid(1.0, -40.0, 10.0)
BETA_M = Exponential(4.0, -65.0, -18.0)
# alpha_h = 0.07 exp(-(V+65)/20),  beta_h = 1 / (1 + exp(-(V+35)/10))
ALPHA_H = Exponential(0.07, -65.0, -20.0)
BETA_H = Sigmoid(1.0, -35.0, 10.0)
# alpha_n = 0.01 (V+55) / (1 - exp(-(V+55)/10)),  beta_n = 0.125 exp(-(V+65)/80)
ALPHA_N = Linoid(0.1, -55.0, 10.0)
BETA_N = Exponential(0.125, -65.0, -80.0)


def hh_sodium(*, g_unit_pS: float = 20.0, reversal_mV: float = 50.0, q10: float = 3.0) -> MarkovScheme:
    """Hodgkin–Huxley Na+ channel: m³h, 8 states ``m0h0 … m3h1``, open ``m3h1``."""
    return gate_scheme(
        "Na",
        [GateParticle("m", 3, ALPHA_M, BETA_M), GateParticle("h", 1, ALPHA_H, BETA_H)],
        g_unit_pS=g_unit_pS,
        reversal_mV=reversal_mV,
        ion="Na",
        q10=q10,
        reference_celsius=6.3,
        reference=HH_REFERENCE,
    )


def hh_potassium(*, g_unit_pS: float = 20.0, reversal_mV: float = -77.0, q10: float = 3.0) -> MarkovScheme:
    """Hodgkin–Huxley delayed-rectifier K+ channel: n⁴, 5 states ``n0 … n4``, open ``n4``."""
    return gate_scheme(
        "K",
        [GateParticle("n", 4, ALPHA_N, BETA_N)],
        g_unit_pS=g_unit_pS,
        reversal_mV=reversal_mV,
        ion="K",
        q10=q10,
        reference_celsius=6.3,
        reference=HH_REFERENCE,
    )
