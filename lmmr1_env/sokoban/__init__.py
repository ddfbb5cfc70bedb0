"""LMMR1/Sokoban-v0: gym-sokoban rooms, LMM-R1's plan verifier, step mode, level loading and an optimal solver."""

from lmmr1_env.sokoban.rules import Level
from lmmr1_env.sokoban.solver import SolveResult, solve
from lmmr1_env.sokoban.verifier import PlanScore, score_plan

__all__ = ["Level", "PlanScore", "SolveResult", "score_plan", "solve"]
