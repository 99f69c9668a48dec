"""Agents, roles, prompts, topologies and the methods built on them."""

from latentrl.mas.decode import Sampling
from latentrl.mas.methods import METHODS, Generation, MethodConfig, Runtime, get_method, register
from latentrl.mas.roles import TOPOLOGIES, Role

__all__ = [
    "METHODS",
    "TOPOLOGIES",
    "Generation",
    "MethodConfig",
    "Role",
    "Runtime",
    "Sampling",
    "get_method",
    "register",
]
