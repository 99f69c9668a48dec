"""Agents, roles, prompts, topologies and the methods built on them."""

from latentrl.mas.decode import Sampling
from latentrl.mas.methods import METHODS, Generation, MethodConfig, Runtime, get_method, register
from latentrl.mas.promptset import PromptSet, load_prompt_set
from latentrl.mas.roles import TOPOLOGIES

__all__ = [
    "METHODS",
    "TOPOLOGIES",
    "Generation",
    "MethodConfig",
    "PromptSet",
    "Runtime",
    "Sampling",
    "get_method",
    "load_prompt_set",
    "register",
]
