"""Ligand-gated receptor channels: transmitter binding drives the scheme (synaptic input).

A receptor's binding steps are :class:`~stochion.rates.LigandBinding` rates, ``k_on × [T]``, where ``[T]`` is
the transmitter concentration (mM) in *its own* cleft: each synapse is a channel population of its own
(``ChannelPopulation(ampa_receptor(name="AMPA_1"), count=...)``), and a release protocol
(:class:`~stochion.protocols.TransmitterRelease` and friends) sets that population's concentration, as a
square pulse, through ``set_ligand_mM``. With no transmitter every receptor relaxes to the unbound state,
which is also the stationary state the runs start from.

Two AMPA schemes are provided (both reversal 0 mV, 10 pS unitary conductance by default):

``"destexhe1998"`` (default) — the six-state scheme with desensitisation of Destexhe, Mainen & Sejnowski
(1998), fitted to AMPA/kainate currents of rat hippocampal slices (Xiang et al. 1994)::

    C0 --Rb[T]--> C1 --Rb[T]--> C2 --Ro--> O
       <--Ru1---    <--Ru2---     <--Rc--
                 |Rd ^Rr       |Rd ^Rr
                 D1            D2

with Rb = 13 /(mM ms), Ru1 = 0.0059 /ms, Ru2 = 86 /ms, Rd = 0.9 /ms, Rr = 0.064 /ms, Ro = 2.7 /ms,
Rc = 0.2 /ms.

``"destexhe1994"`` — the two-state minimal scheme ``C + T <-> O`` (alpha = 1.1 /(mM ms), beta = 0.19 /ms)
of Destexhe, Mainen & Sejnowski (1994), meant for pulses of 1 mM for 1 ms.

The rates are used as published, without temperature correction (``q10 = 1``) unless a Q10 is given.

References
----------
Destexhe A, Mainen ZF, Sejnowski TJ (1994) An efficient method for computing synaptic conductances based on a
kinetic model of receptor binding. Neural Comput 6:14-18. doi:10.1162/neco.1994.6.1.14
Destexhe A, Mainen ZF, Sejnowski TJ (1998) Kinetic models of synaptic transmission. In: Koch C, Segev I (eds)
Methods in Neuronal Modeling, 2nd ed. MIT Press, pp 1-25.
Xiang Z, Greenwood AC, Brown TH (1994) J Neurophysiol 71:2552-2556. doi:10.1152/jn.1994.71.6.2552
"""

from __future__ import annotations

import math

from ..rates import Constant, LigandBinding
from .scheme import MarkovScheme, Transition

__all__ = ["ampa_receptor", "AMPA_KINETICS", "AMPA_REFERENCES"]

#: Published rate constants (1/ms, binding in 1/(mM ms)) of the two AMPA schemes.
AMPA_KINETICS = {
    "destexhe1998": {"Rb": 13.0, "Ru1": 0.0059, "Ru2": 86.0, "Rd": 0.9, "Rr": 0.064, "Ro": 2.7, "Rc": 0.2},
    "destexhe1994": {"alpha": 1.1, "beta": 0.19},
}
AMPA_REFERENCES = {
    "destexhe1998": "Destexhe A, Mainen ZF, Sejnowski TJ (1998) Kinetic models of synaptic transmission. In: Methods "
                    "in Neuronal Modeling, 2nd ed., MIT Press, pp 1-25 (fit to Xiang et al. 1994, "
                    "doi:10.1152/jn.1994.71.6.2552)",
    "destexhe1994": "Destexhe A, Mainen ZF, Sejnowski TJ (1994) Neural Comput 6:14-18. doi:10.1162/neco.1994.6.1.14",
}


def ampa_receptor(name: str = "AMPA", *, kinetics: str = "destexhe1998", g_unit_pS: float = 10.0,
                  reversal_mV: float = 0.0, q10: float = 1.0, reference_celsius: float = 22.0,
                  ligand: str = "glutamate") -> MarkovScheme:
    """An AMPA-type glutamate receptor channel as a ligand-gated Markov scheme.

    Parameters
    ----------
    name : str
        Channel type name; give each synapse its own (``"AMPA_1"``, ``"AMPA_2"`` …) so that each has its own
        cleft concentration and its own columns (``n_open_AMPA_1``, ``I_AMPA_1_pA``).
    kinetics : {"destexhe1998", "destexhe1994"}
        The six-state scheme with desensitisation (states ``C0 C1 C2 D1 D2 O``) or the two-state minimal
        scheme (states ``C O``); see the module docstring for rates and references.
    g_unit_pS : float
        Unitary conductance, pS.
    reversal_mV : float
        Reversal potential, mV (0 for the mixed cation current).
    q10, reference_celsius : float
        Temperature scaling of all rates (default none: the published rates at any temperature).
    ligand : str
        Name of the transmitter (for labels).
    """
    if kinetics not in AMPA_KINETICS:
        raise ValueError(f"ampa_receptor: kinetics must be one of {sorted(AMPA_KINETICS)}, got {kinetics!r}")
    for pname, value in (("g_unit_pS", g_unit_pS), ("q10", q10)):
        if not (math.isfinite(float(value)) and float(value) > 0):
            raise ValueError(f"ampa_receptor: {pname} must be finite and > 0, got {value!r}")
    k = AMPA_KINETICS[kinetics]
    if kinetics == "destexhe1998":
        states = ("C0", "C1", "C2", "D1", "D2", "O")
        transitions = (
            Transition("C0", "C1", LigandBinding(k["Rb"], ligand)),
            Transition("C1", "C0", Constant(k["Ru1"])),
            Transition("C1", "C2", LigandBinding(k["Rb"], ligand)),
            Transition("C2", "C1", Constant(k["Ru2"])),
            Transition("C1", "D1", Constant(k["Rd"])),
            Transition("D1", "C1", Constant(k["Rr"])),
            Transition("C2", "D2", Constant(k["Rd"])),
            Transition("D2", "C2", Constant(k["Rr"])),
            Transition("C2", "O", Constant(k["Ro"])),
            Transition("O", "C2", Constant(k["Rc"])),
        )
    else:
        states = ("C", "O")
        transitions = (
            Transition("C", "O", LigandBinding(k["alpha"], ligand)),
            Transition("O", "C", Constant(k["beta"])),
        )
    return MarkovScheme(
        name=name,
        states=states,
        open_states=("O",),
        transitions=transitions,
        g_unit_pS=g_unit_pS,
        reversal_mV=reversal_mV,
        ion="cation",
        q10=q10,
        reference_celsius=reference_celsius,
        reference=AMPA_REFERENCES[kinetics],
    )
