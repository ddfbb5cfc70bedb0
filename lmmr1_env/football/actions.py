"""The 16 text actions and the parser that reads them from a model's response."""

from __future__ import annotations

import re

import numpy as np

from lmmr1_env.tags import last_tag_body

#: Direction actions and their unit vectors in field coordinates (x right, y down as drawn: GRF's convention).
_DIAG = float(np.sqrt(0.5))
DIRECTIONS: dict[str, tuple[float, float]] = {
    "action_left": (-1.0, 0.0),
    "action_top_left": (-_DIAG, -_DIAG),
    "action_top": (0.0, -1.0),
    "action_top_right": (_DIAG, -_DIAG),
    "action_right": (1.0, 0.0),
    "action_bottom_right": (_DIAG, _DIAG),
    "action_bottom": (0.0, 1.0),
    "action_bottom_left": (-_DIAG, _DIAG),
}
#: Kick actions and the kick kind each plays.
KICKS: dict[str, str] = {
    "action_long_pass": "long",
    "action_high_pass": "high",
    "action_short_pass": "short",
    "action_shot": "shot",
}
#: Every action id a model may write, in MageBench's order (GRF codes 1-13, 15, 17, 18).
ACTION_IDS: tuple[str, ...] = (*DIRECTIONS, *KICKS, "action_sprint", "action_release_sprint", "action_dribble",
                               "action_release_dribble")
#: The no-op a turn plays when the response names no action (GRF action 0).
IDLE = "action_idle"
#: The action the pass macro plays while the ball travels (GRF's built-in AI for the controlled player).
BUILTIN_AI = "action_builtin_ai"
#: GRF action codes, for logs and for readers who know MageBench's traces.
GRF_CODES: dict[str, int] = {IDLE: 0, **{a: i + 1 for i, a in enumerate(ACTION_IDS[:13])},
                             "action_release_sprint": 15, "action_dribble": 17, "action_release_dribble": 18,
                             BUILTIN_AI: 19}

_MAGE = re.compile(r"#\s*action\b(.*)", re.DOTALL | re.IGNORECASE)
_ID = re.compile(r"action_[a-z_]+")
_MAX_SCAN = 20_000  # characters read from a response: an action id never needs more


def _match_id(text: str) -> str | None:
    cleaned = text.strip().strip("`'\"*. \n\t").lower()
    if cleaned in ACTION_IDS:
        return cleaned
    first = _ID.search(cleaned)
    if first and first.group(0) in ACTION_IDS and first.start() == 0:
        return first.group(0)
    return None


def parse_action(response: str) -> tuple[str | None, str | None]:
    """The action id a response names, or ``(None, reason)``.

    Reads ``<answer>ACTION</answer>`` (the last answer tag wins) or MageBench's ``# analyze … # action`` format
    (the first id right after ``# action``), else a response that is nothing but an action id.
    """
    text = response[:_MAX_SCAN]
    answer = last_tag_body(text, "answer", ignore_case=True)
    if answer is not None:
        action = _match_id(answer)
        if action is None:
            return None, f"<answer> holds no action id: {answer.strip()[:40]!r}"
        return action, None
    mage = _MAGE.search(text)
    if mage:
        action = _match_id(mage.group(1).lstrip(": \n\t"))
        if action is None:
            return None, "no action id right after '# action'"
        return action, None
    bare = _match_id(text)
    if bare is not None:
        return bare, None
    if not text.strip():
        return None, "empty response"
    return None, "no <answer>…</answer> and no '# action' line"
