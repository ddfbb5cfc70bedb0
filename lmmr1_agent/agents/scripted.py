"""Scripted agents: baselines that need no model. They return text only (evaluated, never trained)."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence

import numpy as np

from lmmr1_agent.agents.base import Agent, Response
from lmmr1_env.types import Message


class IdleAgent(Agent):
    """Answers every turn with an empty response: the no-op baseline (math: 0; games: their idle action)."""

    def __init__(self, seed: int = 0):
        del seed  # deterministic

    def act(self, conversations: Sequence[list[Message]], infos: Sequence[dict]) -> list[Response]:
        return [Response("") for _ in conversations]


class RandomAgent(Agent):
    """Random printable text, or a random legal action id where the env lists them in ``info["actions"]``."""

    def __init__(self, seed: int = 0, max_chars: int = 40):
        self.rng = np.random.default_rng(seed)
        self.max_chars = max_chars

    def act(self, conversations: Sequence[list[Message]], infos: Sequence[dict]) -> list[Response]:
        responses = []
        for info in infos:
            actions = info.get("actions")
            if actions:
                choice = actions[int(self.rng.integers(len(actions)))]
                responses.append(Response(f"<think>random</think><answer>{choice}</answer>"))
            else:
                n = int(self.rng.integers(0, self.max_chars + 1))
                responses.append(Response("".join(self.rng.choice(list(string.printable), size=n))))
        return responses


_OUTER_BOXED = re.compile(r"^\\boxed\s*\{(.*)\}$", re.DOTALL)


def _bare_answer(answer: str) -> str:
    s = answer.strip()
    if len(s) >= 2 and s.startswith("$") and s.endswith("$"):
        s = s.strip("$").strip()
    match = _OUTER_BOXED.match(s)
    return match.group(1).strip() if match else s


class OracleAgent(Agent):
    """Writes the gold answer (``info["answer"]``) in the env's format: the reward's upper bound.

    The answer goes in ``$\\boxed{…}$``, which both math reward modes read.
    """

    def __init__(self, seed: int = 0):
        del seed  # deterministic

    def act(self, conversations: Sequence[list[Message]], infos: Sequence[dict]) -> list[Response]:
        responses = []
        for info in infos:
            if "answer" not in info:
                raise ValueError("the oracle agent needs info['answer'] (math envs provide it)")
            boxed = f"$\\boxed{{{_bare_answer(str(info['answer']))}}}$"
            responses.append(Response(f"<think>I know the answer.</think><answer>{boxed}</answer>"))
        return responses


def _football_heuristic(seed: int = 0) -> Agent:
    from lmmr1_agent.agents.football import FootballHeuristicAgent

    return FootballHeuristicAgent(seed=seed)


def _sokoban_solver(seed: int = 0) -> Agent:
    from lmmr1_agent.agents.sokoban import SokobanSolverAgent

    return SokobanSolverAgent(seed=seed)


#: Scripted agents by the name ``--agent`` takes; each factory accepts ``seed=``.
AGENTS: dict[str, Callable[..., Agent]] = {
    "idle": IdleAgent,
    "random": RandomAgent,
    "oracle": OracleAgent,
    "football-heuristic": _football_heuristic,
    "sokoban-solver": _sokoban_solver,
}

