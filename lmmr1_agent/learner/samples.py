"""Episodes → training samples: what the learner trains on, with the credit each sample gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lmmr1_agent.rollout import Episode


@dataclass
class Sample:
    """One training sequence: a prompt, the tokens after it, and the return credited to it.

    ``response_ids`` are the model's own tokens, except in a multi-turn ``full`` episode, where they run to the
    end of the episode and ``response_mask`` is False on the env's tokens between responses (not trained on).
    """

    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]
    reward: float
    group: int
    conversation: list
    truncated: bool
    reward_terms: dict
    response_mask: list[bool] | None = None


def episodes_to_samples(episodes: Sequence[Episode], groups: Sequence[int]) -> list[Sample]:
    """Samples of a rollout: one per ``full`` episode (its whole token sequence, credited with the episode's
    return); one per turn of a ``last`` episode, credited with the return from that turn on."""
    samples = []
    for episode, group in zip(episodes, groups):
        if episode.history == "full" and len(episode.turns) > 1:
            samples.append(_sequence_sample(episode, group))
            continue
        rewards = [t.reward for t in episode.turns]
        for k, turn in enumerate(episode.turns):
            if not turn.response_ids:
                continue  # an empty generation (immediate EOS is still one token): nothing to train
            samples.append(Sample(turn.prompt_ids, turn.response_ids, turn.response_logprobs,
                                  float(sum(rewards[k:])), group, turn.prompt, turn.truncated_response,
                                  turn.reward_terms))
    return samples


def _sequence_sample(episode: Episode, group: int) -> Sample:
    """A multi-turn ``full`` episode as one sample: every turn's prompt continues the tokens before it."""
    first, last = episode.turns[0], episode.turns[-1]
    if any(t.prompt_ids is None or t.response_ids is None for t in episode.turns):
        raise ValueError(f"{episode.env_id} seed {episode.seed}: history 'full' training needs an agent that "
                         "returns token ids for every turn")
    sequence = list(last.prompt_ids) + list(last.response_ids)
    offset = len(first.prompt_ids)
    mask = [False] * (len(sequence) - offset)
    logprobs = [0.0] * (len(sequence) - offset)
    for k, turn in enumerate(episode.turns):
        start, end = len(turn.prompt_ids), len(turn.prompt_ids) + len(turn.response_ids)
        if sequence[:end] != list(turn.prompt_ids) + list(turn.response_ids):
            raise ValueError(f"{episode.env_id} seed {episode.seed}: turn {k}'s tokens are not a prefix of the "
                             "episode's sequence (the agent re-tokenised an earlier turn)")
        mask[start - offset:end - offset] = [True] * (end - start)
        logprobs[start - offset:end - offset] = turn.response_logprobs
    return Sample(list(first.prompt_ids), sequence[offset:], logprobs, episode.total_return, group, last.prompt,
                  any(t.truncated_response for t in episode.turns), dict(episode.reward_terms), mask)
