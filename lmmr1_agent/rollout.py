"""Playing episodes: the one place that turns observations into prompts and responses into actions.

The rollout meets environments through the Gymnasium API only and agents through
:class:`lmmr1_agent.agents.Agent`; it never imports an env class.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from lmmr1_agent.agents.base import Agent, Response
from lmmr1_env.chat import assemble, user_message
from lmmr1_env.types import Message

#: ``full``: the episode is one growing token sequence; ``last``: each turn a fresh prompt with the latest
#: observation; ``auto``: what the env's ``metadata["history"]`` asks for (``full`` where it says nothing).
HISTORY_MODES = ("auto", "full", "last")


@dataclass
class Turn:
    """One observation, the response to it, and what the env made of it."""

    text: str
    image: np.ndarray | None
    response: str
    reward: float
    reward_terms: dict[str, float]
    parse_error: str | None = None
    truncated_response: bool = False
    #: What the agent saw and generated, for training: the prompt messages and the model's own tokens.
    prompt: list[Message] = field(default_factory=list)
    prompt_ids: list[int] | None = None
    response_ids: list[int] | None = None
    response_logprobs: list[float] | None = None


@dataclass
class Episode:
    """A finished episode with its turns, return and per-term totals."""

    env_id: str
    seed: int
    system_prompt: str
    turns: list[Turn] = field(default_factory=list)
    reward_terms: dict[str, float] = field(default_factory=dict)
    success: bool | None = None
    truncated: bool = False
    final_info: dict[str, Any] = field(default_factory=dict)
    #: How the turns were prompted: ``full`` (one growing token sequence) or ``last`` (a fresh prompt each turn).
    history: str = "full"

    @property
    def total_return(self) -> float:
        return float(sum(t.reward for t in self.turns))

    def drop_media(self) -> None:
        """Forget images and prompts (keep texts, rewards and token counts): for long evaluations."""
        for turn in self.turns:
            turn.image, turn.prompt = None, []

    @property
    def parse_errors(self) -> int:
        return sum(t.parse_error is not None for t in self.turns)

    def record(self) -> dict[str, Any]:
        """The episode as a JSON-able record (images are not included): one line of ``episodes.jsonl``."""
        return {
            "env": self.env_id, "seed": self.seed, "task_id": self.final_info.get("task_id"),
            "family": self.final_info.get("family"), "return": self.total_return, "reward_terms": self.reward_terms,
            "success": self.success, "truncated": self.truncated,
            "turns": [{"observation": t.text, "has_image": t.image is not None, "response": t.response,
                       "reward": t.reward, "reward_terms": t.reward_terms, "parse_error": t.parse_error}
                      for t in self.turns],
        }


def conversation(system_prompt: str, user_messages: Sequence[Message], responses: Sequence[str],
                 demonstration: Sequence[Message] | None, history: str) -> list[Message]:
    """The prompt for the next response: the whole episode (``full``) or the latest observation (``last``)."""
    if history not in ("full", "last"):
        raise ValueError(f"history must be 'full' or 'last' here, got {history!r}")
    if history == "full":
        return assemble(system_prompt, user_messages, responses, demonstration)
    if history == "last":
        return assemble(system_prompt, user_messages[-1:], (), demonstration)


def resolve_history(history: str, env: gym.Env) -> str:
    """``auto`` → the env's preferred mode (``metadata["history"]``, default ``full``); others unchanged."""
    if history not in HISTORY_MODES:
        raise ValueError(f"history must be one of {HISTORY_MODES}, got {history!r}")
    return env.metadata.get("history", "full") if history == "auto" else history


def sampling_seed(*keys: int) -> int:
    """A 62-bit seed that is a pure function of ``keys`` (e.g. run seed, step, prompt, sample, turn)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> 2)


def play_episodes(make_env: Callable[[], gym.Env], agent: Agent, seeds: Sequence[int], *, env_id: str = "",
                  batch_size: int = 8, history: str = "auto", demonstration: bool | None = None,
                  max_turns: int = 1000, sampling_seeds: Sequence[int] | None = None) -> Iterator[Episode]:
    """Play one episode per seed, ``batch_size`` at a time, asking ``agent`` for each batch of turns.

    ``demonstration`` (default: the agent's preference) sends the env's solved example exchange first.
    With ``full`` history a token-level agent continues each episode's own token sequence
    (:meth:`Agent.respond`): earlier responses are never re-tokenised. ``sampling_seeds`` (one per episode)
    make each episode's samples independent of the batch it is played in: turn ``t`` of episode ``i`` is
    sampled with ``sampling_seed(sampling_seeds[i], t)``.
    Episodes are yielded as their batch finishes, in seed order.
    """
    if history not in HISTORY_MODES:
        raise ValueError(f"history must be one of {HISTORY_MODES}, got {history!r}")
    if sampling_seeds is not None and len(sampling_seeds) != len(seeds):
        raise ValueError(f"{len(sampling_seeds)} sampling seeds for {len(seeds)} episodes")
    send_demo = agent.uses_demonstration if demonstration is None else demonstration
    envs: list[gym.Env] = []
    try:
        for start in range(0, len(seeds), batch_size):
            chunk = list(seeds[start:start + batch_size])
            while len(envs) < len(chunk):
                envs.append(make_env())
            chunk_sampling = None if sampling_seeds is None else list(sampling_seeds[start:start + batch_size])
            yield from _play_batch(envs[:len(chunk)], agent, chunk, env_id, history, send_demo, max_turns,
                                   chunk_sampling)
    finally:
        for env in envs:
            env.close()


_STEP_THREADS = 8


@functools.cache
def _step_pool(pid: int) -> ThreadPoolExecutor:
    """This process's stepping threads (keyed by pid: a forked child cannot use its parent's threads)."""
    return ThreadPoolExecutor(max_workers=_STEP_THREADS, thread_name_prefix="lmmr1-env-step")


def step_all(envs: Sequence[gym.Env], actions: Sequence[str]) -> list[tuple]:
    """``env.step(action)`` for each pair, at the same time, results in order.

    Envs of a class with a ``prepare_steps`` hook (:meth:`lmmr1_env.core.LMMEnv.prepare_steps`) get it first,
    once per class: the math envs score the whole batch there in one verifier round trip. Then every env is
    stepped, from threads, so that an env whose step itself waits (a worker, a server) does not hold up the
    others. Each env is stepped by one thread only; envs share no mutable state.
    """
    by_class: dict[type, tuple[list, list]] = {}
    for env, action in zip(envs, actions):
        hook = getattr(type(env.unwrapped), "prepare_steps", None)
        if hook is not None:
            group = by_class.setdefault(type(env.unwrapped), ([], []))
            group[0].append(env.unwrapped)
            group[1].append(action)
    for cls, (group_envs, group_actions) in by_class.items():
        cls.prepare_steps(group_envs, group_actions)
    if len(envs) <= 1 or any(getattr(env, "render_mode", None) == "human" for env in envs):  # one window, one thread
        return [env.step(action) for env, action in zip(envs, actions)]
    return list(_step_pool(os.getpid()).map(lambda pair: pair[0].step(pair[1]), zip(envs, actions)))


def _play_batch(envs: list[gym.Env], agent: Agent, seeds: list[int], env_id: str, history: str, send_demo: bool,
                max_turns: int, sampling_seeds: list[int] | None) -> list[Episode]:
    # Only the latest observation is kept per episode; the chat keeps each turn's message (one PIL image each).
    history = resolve_history(history, envs[0])
    episodes, latest, users, responses, infos, demos = [], [], [], [], [], []
    prefixes: list[list[int] | None] = [None] * len(envs)  # full history: the episode's tokens so far
    for env, seed in zip(envs, seeds):
        obs, info = env.reset(seed=seed)
        system_prompt = info.get("system_prompt", env.get_wrapper_attr("system_prompt"))
        episodes.append(Episode(env_id=env_id, seed=seed, system_prompt=system_prompt, history=history))
        latest.append(obs)
        users.append([user_message(obs)])
        responses.append([])
        infos.append(info)
        demos.append(env.get_wrapper_attr("demonstration") if send_demo else None)
    active = list(range(len(envs)))
    for turn in range(max_turns):
        if not active:
            break
        prompts = [conversation(episodes[i].system_prompt, users[i], responses[i], demos[i], history)
                   for i in active]
        replies: list[Response] = agent.respond(
            prompts, [infos[i] for i in active],
            prefix_ids=[prefixes[i] for i in active] if history == "full" else None,
            seeds=None if sampling_seeds is None else [sampling_seed(sampling_seeds[i], turn) for i in active])
        if len(replies) != len(active):
            raise RuntimeError(f"{type(agent).__name__}.act returned {len(replies)} responses "
                               f"for {len(active)} prompts")
        still_active = []
        stepping = [(i, reply) for i, reply in zip(active, replies) if not reply.context_full]
        outcomes = dict(zip((i for i, _ in stepping), step_all([envs[i] for i, _ in stepping],
                                                                [reply.text for _, reply in stepping])))
        for i, prompt, reply in zip(active, prompts, replies):
            if reply.context_full:  # the episode's token sequence filled the model's context
                episodes[i].truncated = True
                episodes[i].final_info = {**infos[i], "truncated_by": "context"}
                continue
            obs, reward, terminated, truncated, info = outcomes[i]
            last = latest[i]
            episode = episodes[i]
            episode.turns.append(Turn(text=last["text"], image=last.get("image"), response=reply.text,
                                      reward=float(reward), reward_terms=dict(info.get("reward_terms", {})),
                                      parse_error=info.get("parse_error"), truncated_response=reply.truncated,
                                      prompt=prompt, prompt_ids=reply.prompt_token_ids,
                                      response_ids=reply.token_ids, response_logprobs=reply.logprobs))
            for name, value in info.get("reward_terms", {}).items():
                episode.reward_terms[name] = episode.reward_terms.get(name, 0.0) + float(value)
            responses[i].append(reply.text)
            if reply.prompt_token_ids is not None and reply.token_ids is not None:
                prefixes[i] = list(reply.prompt_token_ids) + list(reply.token_ids)
            latest[i] = obs
            users[i].append(user_message(obs))
            infos[i] = info
            if terminated or truncated:
                episode.truncated = bool(truncated and not terminated)
                episode.success = info.get("success")
                episode.final_info = info
            else:
                still_active.append(i)
        active = still_active
    for i in active:  # ran out of turns
        episodes[i].truncated = True
        episodes[i].final_info = infos[i]
    return episodes
