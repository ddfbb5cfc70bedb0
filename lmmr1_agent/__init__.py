"""lmmr1_agent: agents that play lmmr1 environments, the rollout that drives them, and the CLIs."""

from lmmr1_agent.agents import AGENTS, Agent, Response, make_agent

__all__ = ["AGENTS", "Agent", "Response", "make_agent"]
