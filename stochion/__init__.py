"""stochion: exact stochastic simulation of nerve membranes, one ion channel at a time.

Channels are individual Markov agents whose voltage-dependent transitions are sampled exactly (no time step)
by a compiled Gillespie kernel, with the membrane voltage following its exact solution between events.
"""

from .biophysics import (
    CONCENTRATION_SETS,
    MAMMALIAN_NEURON,
    SQUID_AXON,
    IonConcentrations,
    ghk_voltage_mV,
    nernst_mV,
    q10_factor,
)
from .channels import (
    GateParticle,
    MarkovScheme,
    Transition,
    ampa_receptor,
    gate_scheme,
    hh_potassium,
    hh_sodium,
    leak_channel,
)
from .deterministic import DeterministicSimulation
from .engine import PatchSimulation, VoltageRunawayError
from .ensemble import SweepResult, sweep, trial_seed
from .experiment import Experiment
from .membrane import ChannelPopulation, Patch, hh_patch
from .protocols import (
    Combined,
    CurrentPulse,
    CurrentRamp,
    CurrentStep,
    CurrentWaveform,
    NoisyCurrent,
    PairedPulse,
    PoissonRelease,
    PulseTrain,
    RegularRelease,
    Schedule,
    SpikeTriggeredPulse,
    StopAfterSpikes,
    TransmitterRelease,
    VoltageClamp,
    VoltageStep,
    activation_protocols,
    inactivation_protocols,
    recovery_protocols,
)
from .rates import Constant, Exponential, Linoid, Sigmoid, TabulatedRate
from .results import Result
from .simulation import simulate

__version__ = "0.1.0"

__all__ = [
    "CONCENTRATION_SETS",
    "MAMMALIAN_NEURON",
    "SQUID_AXON",
    "IonConcentrations",
    "ghk_voltage_mV",
    "nernst_mV",
    "q10_factor",
    "GateParticle",
    "MarkovScheme",
    "Transition",
    "gate_scheme",
    "hh_potassium",
    "hh_sodium",
    "leak_channel",
    "ampa_receptor",
    "PatchSimulation",
    "DeterministicSimulation",
    "VoltageRunawayError",
    "ChannelPopulation",
    "Patch",
    "hh_patch",
    "Experiment",
    "sweep",
    "SweepResult",
    "trial_seed",
    "Combined",
    "CurrentStep",
    "CurrentPulse",
    "PulseTrain",
    "PairedPulse",
    "CurrentRamp",
    "NoisyCurrent",
    "CurrentWaveform",
    "Schedule",
    "VoltageStep",
    "VoltageClamp",
    "activation_protocols",
    "inactivation_protocols",
    "recovery_protocols",
    "SpikeTriggeredPulse",
    "StopAfterSpikes",
    "TransmitterRelease",
    "RegularRelease",
    "PoissonRelease",
    "Constant",
    "Exponential",
    "Linoid",
    "Sigmoid",
    "TabulatedRate",
    "Result",
    "simulate",
]
