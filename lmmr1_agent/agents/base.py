"""The agent interface: a batch of conversations in, one response per conversation out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from lmmr1_env.types import Message


@dataclass
class Response:
    """One generated response. Trainable agents also return what the learner needs."""

    text: str
    #: Generated token ids (trainable agents only), exactly as sampled.
    token_ids: list[int] | None = None
    #: Sampling log-probability of each generated token, same length as ``token_ids``.
    logprobs: list[float] | None = None
    #: True when generation stopped at the length limit rather than at end-of-sequence.
    truncated: bool = False
    #: The prompt's token ids exactly as the model saw them (trainable agents only; images expanded).
    prompt_token_ids: list[int] | None = None
    #: No response: a continued episode (``prefix_ids``) has no room left in the model's context for another
    #: one. The rollout ends that episode as truncated.
    context_full: bool = False


class Agent(ABC):
    """Turns conversations into responses, in batches.

    ``conversations[i]`` is the chat (from :func:`lmmr1_env.build_messages`) of episode ``i`` and
    ``infos[i]`` that episode's latest ``info``. Model agents read only the conversation; scripted
    agents may read privileged ``info`` fields (``answer``, ``state``) instead of importing env classes.
    """

    #: Whether the rollout should put the env's demonstration exchange before the first observation.
    uses_demonstration: bool = False

    @abstractmethod
    def act(self, conversations: Sequence[list[Message]], infos: Sequence[dict]) -> list[Response]:
        """One response per conversation, in order."""

    def respond(self, conversations: Sequence[list[Message]], infos: Sequence[dict], *,
                prefix_ids: Sequence[list[int] | None] | None = None,
                seeds: Sequence[int] | None = None) -> list[Response]:
        """What the rollout calls: :meth:`act`, with two hints that token-level agents honour.

        ``prefix_ids[i]``: conversation ``i`` continues this token sequence (its earlier turns exactly as
        generated, never re-tokenised; ``history="full"``), or starts afresh where it is None.
        ``seeds[i]``: the seed of row ``i``'s sampling, so a row's response does not depend on the batch it
        shares (the same group gives the same samples on any env runner). Agents that work on text ignore both.
        """
        return self.act(conversations, infos)

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for agents that hold nothing
        """Release whatever the agent holds (processes, connections)."""
