"""MageBench's 108 starting situations: loading, selection, and conversion to global coordinates."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from lmmr1_env.datasets import builtin_data

SCENARIO_FILE = ("football", "magebench_scenarios.json")


@dataclass(frozen=True)
class Scenario:
    """One starting situation in global coordinates (both teams as seen from the left team's side)."""

    id: str
    ball: tuple[float, float]
    left: np.ndarray  # (n_left, 2) positions
    right: np.ndarray  # (n_right, 2) positions, already mirrored into the global frame
    left_roles: tuple[str, ...]
    right_roles: tuple[str, ...]
    config: dict[str, Any]

    def to_row(self) -> dict[str, Any]:
        """A JSON-able description, for logs and ``info``."""
        return {"id": self.id, "ball": list(self.ball), "n_left": len(self.left), "n_right": len(self.right)}


@lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    return json.loads(builtin_data(*SCENARIO_FILE).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def load_scenarios() -> dict[str, Scenario]:
    """Every shipped scenario by id, in file order."""
    out: dict[str, Scenario] = {}
    for row in _raw()["scenarios"]:
        left = np.array([[p["x"], p["y"]] for p in row["left_team"]], dtype=np.float64)
        right = -np.array([[p["x"], p["y"]] for p in row["right_team_as_written"]], dtype=np.float64)
        if row["id"] in out:
            raise ValueError(f"{'/'.join(SCENARIO_FILE)}: duplicate scenario id {row['id']!r}")
        out[row["id"]] = Scenario(
            id=row["id"], ball=(float(row["ball"][0]), float(row["ball"][1])), left=left, right=right,
            left_roles=tuple(p["role"] for p in row["left_team"]),
            right_roles=tuple(p["role"] for p in row["right_team_as_written"]), config=dict(row["config"]))
    return out


def subsets() -> dict[str, list[str]]:
    """The named subsets of the file: ``all`` (108 ids) and ``mini`` (20)."""
    return {name: list(ids) for name, ids in _raw()["subsets"].items()}


def select_scenarios(scenario: str | Sequence[str]) -> list[str]:
    """Scenario ids for the env's ``scenario`` argument: one id, a subset name, or a list of ids."""
    known = load_scenarios()
    named = subsets()
    if isinstance(scenario, str):
        if scenario in named:
            return named[scenario]
        ids = [scenario]
    else:
        ids = list(scenario)
    if not ids:
        raise ValueError("scenario list is empty")
    unknown = [s for s in ids if s not in known]
    if unknown:
        raise ValueError(f"unknown football scenario(s) {unknown}; use an id such as 'R3_T_2', "
                         f"a subset ({', '.join(named)}) or a list of ids")
    return ids
