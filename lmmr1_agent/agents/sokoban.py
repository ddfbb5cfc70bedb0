"""A scripted Sokoban agent: reads the room from ``info["state"]`` and plays the solver's move-optimal plan."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmmr1_agent.agents.base import Agent, Response
from lmmr1_env.sokoban.rules import apply_move
from lmmr1_env.sokoban.solver import DEFAULT_MAX_STATES, solve
from lmmr1_env.types import Message


class SokobanSolverAgent(Agent):
    """Answers LMMR1/Sokoban-v0 with the solver's plan: the whole list in plan mode, the next move in step mode.

    When the solver proves the level unsolvable or runs out of budget, it answers ``Up`` (well-formed, so the
    episode still scores the format terms) and says so in its thinking.
    """

    def __init__(self, seed: int = 0, max_states: int = DEFAULT_MAX_STATES):
        del seed  # deterministic
        self.max_states = max_states
        self._plans: dict[bytes, list[str] | None] = {}

    def plan(self, room_fixed: np.ndarray, room_state: np.ndarray) -> list[str] | None:
        """The move-optimal plan from this room, or None when none was found (cached per room)."""
        room_fixed = np.asarray(room_fixed, dtype=np.uint8)
        room_state = np.asarray(room_state, dtype=np.uint8)
        key = room_fixed.tobytes() + room_state.tobytes() + bytes(room_state.shape)
        if key not in self._plans:
            if len(self._plans) > 4096:
                self._plans.clear()
            result = solve(room_fixed, room_state, max_states=self.max_states)
            self._plans[key] = result.moves
            if result.moves:
                # Every room along an optimal plan has the rest of the plan as an optimal plan: cache those
                # too, so step mode solves once per episode.
                state = room_state.copy()
                for i, move in enumerate(result.moves[:-1]):
                    apply_move(state, room_fixed, move)
                    self._plans.setdefault(room_fixed.tobytes() + state.tobytes() + bytes(state.shape),
                                           result.moves[i + 1:])
        return self._plans[key]

    def act(self, conversations: Sequence[list[Message]], infos: Sequence[dict]) -> list[Response]:
        responses = []
        for info in infos:
            state = info.get("state")
            if not isinstance(state, dict) or "room_state" not in state:
                raise ValueError("the Sokoban solver agent needs info['state'] with room_state and room_fixed "
                                 "(LMMR1/Sokoban-v0 provides it)")
            room_fixed = np.asarray(state["room_fixed"], dtype=np.uint8)
            room_state = np.asarray(state["room_state"], dtype=np.uint8)
            moves = self.plan(room_fixed, room_state)
            if not moves:
                why = "already solved" if moves == [] else "no plan found within the solver's budget"
                responses.append(Response(f"<think>The solver found {why}.</think><answer>Up</answer>"))
                continue
            if info.get("mode") == "step":
                answer = moves[0]
                thought = f"The optimal plan from here has {len(moves)} moves; the next one is {answer}."
            else:
                answer = ", ".join(moves)
                thought = f"The solver's optimal plan has {len(moves)} moves."
            responses.append(Response(f"<think>{thought}</think><answer>{answer}</answer>"))
        return responses
