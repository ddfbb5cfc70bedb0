"""LMM-R1's Sokoban plan verifier (TideDra/lmm-r1, ``openrlhf/models/remote_rm/sokoban_verifier.py``), exactly.

Total = task + format + move_count + thinking, or 0 when the format check fails:

- the response first loses end-of-sequence tokens and surrounding whitespace;
- format: exactly one each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` (counts only), and every
  comma-separated, stripped, lower-cased item of the answer is left / right / up / down;
- task: the best cumulative gym-sokoban reward (from 0) replaying at most the first 50 moves, stopping when
  solved;
- format term 0.5;
- move_count with n = every move written: 0.05·n if n < 20 else 1.0 − 0.2·((n − 20)/30)², no lower bound;
  if any 1- to 5-word pattern of the answer repeats back-to-back more than 7 times, min(0, term − 0.2);
- thinking: 0.001 per single-space-separated piece longer than one character of the stripped ``<think>``
  text, capped at 0.2 (200 pieces).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lmmr1_env.sokoban.rules import Level, best_cumulative_reward, play
from lmmr1_env.tags import strip_eos

#: End-of-sequence tokens removed (every occurrence) before scoring, as LMM-R1's reward server does.
#: Moves replayed for the task term.
MAX_REPLAY = 50
FORMAT_REWARD = 0.5
#: A k-gram (k = 1..REPEAT_MAX_K) repeated back-to-back more than REPEAT_LIMIT times is penalised.
REPEAT_LIMIT = 7
REPEAT_MAX_K = 5
REPEAT_PENALTY = 0.2
_MOVE_WORDS = {"up": "Up", "down": "Down", "left": "Left", "right": "Right"}
_WORD = re.compile(r"\b\w[\w']*\b")


@dataclass
class PlanScore:
    """The verifier's verdict on one response: the total, its named terms, and what was read."""

    reward: float
    terms: dict[str, float]
    #: The moves read from the answer (``["Left", "Up", ...]``), or None when the format check failed.
    moves: list[str] | None
    #: Why the format check failed (None when it passed).
    parse_error: str | None = None
    #: True when the replayed (at most 50) moves solve the level.
    solved: bool = False
    #: Whether the move-count term took the repetition penalty.
    repeated: bool = False
    #: Pieces counted by the thinking term.
    thinking_words: int = 0
    step_rewards: list[float] = field(default_factory=list)


def answer_text(response: str) -> str:
    """What LMM-R1 reads as the answer of a response with one ``<answer>`` and one ``</answer>``: the text after
    ``<answer>`` up to ``</answer>``, or to the end when ``</answer>`` comes first (LMM-R1 does not check their
    order, so this is not ``tags.first_tag_body``, which would find no answer)."""
    return response.split("<answer>")[1].split("</answer>")[0]


def answer_items(response: str) -> list[str]:
    """The comma-separated items of the answer, stripped and lower-cased, as LMM-R1 splits them."""
    return [item.strip().lower() for item in answer_text(response).split(",")]


def format_error(response: str) -> str | None:
    """Why ``response`` (already EOS-stripped) fails LMM-R1's format check, or None if it passes."""
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        count = response.count(tag)
        if count != 1:
            return f"expected exactly one {tag}, found {count}"
    bad = [item for item in answer_items(response) if item not in _MOVE_WORDS]
    if bad:
        shown = ", ".join(repr(item[:20]) for item in bad[:3])
        return f"the answer must be moves Left/Right/Up/Down separated by commas; cannot read {shown}"
    return None


def move_count_term(num_moves: int) -> float:
    """0.05 per move below 20 moves; from 20 on, 1.0 − 0.2·((n − 20)/30)² (unbounded below)."""
    if num_moves < 20:
        return num_moves * 0.05
    return 20 * 0.05 - ((num_moves - 20) / 30) ** 2 * 0.2


def thinking_pieces(response: str) -> int:
    """Pieces longer than one character of the stripped ``<think>`` text split on single spaces."""
    analysis = response.split("<think>")[1].split("</think>")[0].strip()
    return sum(1 for piece in analysis.split(" ") if len(piece) > 1)


def thinking_term(pieces: int) -> float:
    """0.001 per piece, capped at 0.2."""
    return pieces * 0.001 if pieces < 200 else 200 * 0.001


def has_repetition(text: str, limit: int = REPEAT_LIMIT, max_k: int = REPEAT_MAX_K) -> bool:
    """True when some k-gram of words (k = 1..max_k) occurs more than ``limit`` times back-to-back.

    LMM-R1's ``check_repeated_substrings``: for each k-gram it remembers only its last start; an occurrence
    counts as consecutive when it starts exactly k words after that. (So overlapping runs such as
    ``left left left`` for k = 2 restart the count; only k = 1 catches them.)
    """
    words = _WORD.findall(text.lower())
    last_seen: list[dict[tuple[str, ...], tuple[int, int]]] = [{} for _ in range(max_k + 1)]
    for i in range(len(words)):
        for k in range(1, max_k + 1):
            start = i - k + 1
            if start < 0:
                continue
            gram = tuple(words[start:i + 1])
            seen = last_seen[k].get(gram)
            count = seen[1] + 1 if seen is not None and seen[0] == start - k else 1
            last_seen[k][gram] = (start, count)
            if count > limit:
                return True  # LMM-R1 scans on, but its verdict cannot change once one k-gram is over
    return False


def score_plan(response: str, level: Level) -> PlanScore:
    """Score a whole-plan response on ``level`` exactly as LMM-R1's Sokoban verifier does."""
    text = strip_eos(response)
    error = format_error(text)
    if error is not None:
        zero = {"task": 0.0, "format": 0.0, "move_count": 0.0, "thinking": 0.0}
        return PlanScore(reward=0.0, terms=zero, moves=None, parse_error=error)
    answer = answer_text(text).strip()
    moves = [_MOVE_WORDS[item] for item in answer_items(text)]
    move_term = move_count_term(len(moves))
    repeated = has_repetition(answer)
    if repeated:
        move_term = min(0.0, move_term - REPEAT_PENALTY)
    pieces = thinking_pieces(text)
    step_rewards, solved, _ = play(level, moves, limit=MAX_REPLAY)
    task = best_cumulative_reward(step_rewards)
    terms = {"task": task, "format": FORMAT_REWARD, "move_count": move_term, "thinking": thinking_term(pieces)}
    total = task + FORMAT_REWARD + move_term + terms["thinking"]
    return PlanScore(reward=total, terms=terms, moves=moves, solved=solved, repeated=repeated,
                     thinking_words=pieces, step_rewards=step_rewards)
