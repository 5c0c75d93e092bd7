"""Catalogue of channel schemes: the declarative core and one module per channel family."""

from .hh import hh_potassium, hh_sodium
from .leak import leak_channel
from .ligand import ampa_receptor
from .scheme import GateParticle, MarkovScheme, Transition, gate_scheme

__all__ = ["MarkovScheme", "Transition", "GateParticle", "gate_scheme", "hh_sodium", "hh_potassium", "leak_channel",
           "ampa_receptor"]
