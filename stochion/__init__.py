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
from .channels import GateParticle, MarkovScheme, Transition, gate_scheme, hh_potassium, hh_sodium, leak_channel
from .deterministic import DeterministicSimulation
from .engine import PatchSimulation, VoltageRunawayError
from .membrane import ChannelPopulation, Patch, hh_patch
from .protocols import CurrentStep, Schedule, VoltageStep
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
    "PatchSimulation",
    "DeterministicSimulation",
    "VoltageRunawayError",
    "ChannelPopulation",
    "Patch",
    "hh_patch",
    "CurrentStep",
    "Schedule",
    "VoltageStep",
    "Constant",
    "Exponential",
    "Linoid",
    "Sigmoid",
    "TabulatedRate",
    "Result",
    "simulate",
]
