"""Agents: the one batched interface, and the registry of agents by name."""

from lmmr1_agent.agents.base import Agent, Response
from lmmr1_agent.agents.scripted import AGENTS, make_agent

__all__ = ["AGENTS", "Agent", "Response", "make_agent"]
