"""``python -m lmmr1_agent.evaluate``: play an agent on lmmr1 environments and report the scores.

Example::

    python -m lmmr1_agent.evaluate --env LMMR1/TextMath-v0 --agent oracle --episodes 100
    python -m lmmr1_agent.evaluate --env 'LMMR1/TextMath-v0:{"difficulty": 4}' --agent random

Prints a results table (mean return with its standard error, each reward term, success rate, how
many responses could not be read, time) and writes ``results.json``, ``episodes.jsonl`` and
``report.html`` (every episode with its images, browsable) to ``--output``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
from tqdm import tqdm

from lmmr1_agent.agents import make_agent
from lmmr1_agent.agents.openai_http import DEFAULT_RETRY_BUDGET, DEFAULT_TIMEOUT, AgentError
from lmmr1_agent.cli import (
    ArgumentParser,
    ConfigError,
    check_count,
    check_env,
    check_number,
    check_output_dir,
    parse_env_spec,
)
from lmmr1_agent.report import ReportWriter
from lmmr1_agent.rollout import HISTORY_MODES, Episode, play_episodes
from lmmr1_agent.stats import mean_stderr
from lmmr1_env.datasets import DatasetError

__all__ = ["build_parser", "main", "parse_env_spec", "summarize"]


def summarize(env_id: str, kwargs: dict, episodes: list[Episode], seconds: float) -> dict[str, Any]:
    """Mean return with standard error, per-term means, success and parse-error rates for one env."""
    n = len(episodes)
    mean, se = mean_stderr([e.total_return for e in episodes])
    terms = sorted({name for e in episodes for name in e.reward_terms})
    turns = sum(len(e.turns) for e in episodes)
    successes = [e.success for e in episodes if e.success is not None]
    return {
        "env": env_id,
        "kwargs": kwargs,
        "episodes": n,
        "mean_return": mean,
        "stderr": se,
        "reward_terms": {t: sum(e.reward_terms.get(t, 0.0) for e in episodes) / n for t in terms},
        "success_rate": sum(successes) / len(successes) if successes else None,
        "parse_error_rate": sum(e.parse_errors for e in episodes) / max(turns, 1),
        "mean_turns": turns / n,
        "seconds": seconds,
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """The results as an aligned plain-text table."""
    terms = sorted({t for r in rows for t in r["reward_terms"]})
    header = ["env", "episodes", "return", *terms, "success", "unreadable", "seconds"]
    body = []
    for r in rows:
        success = "-" if r["success_rate"] is None else f"{r['success_rate']:.1%}"
        body.append([r["env"], str(r["episodes"]), f"{r['mean_return']:.3f} ± {r['stderr']:.3f}",
                     *(f"{r['reward_terms'].get(t, 0.0):.3f}" for t in terms), success,
                     f"{r['parse_error_rate']:.1%}", f"{r['seconds']:.1f}"])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def episode_record(episode: Episode) -> dict[str, Any]:
    """An episode as a JSON-able record (images are not included)."""
    return {
        "env": episode.env_id, "seed": episode.seed, "return": episode.total_return,
        "reward_terms": episode.reward_terms, "success": episode.success, "truncated": episode.truncated,
        "turns": [{"observation": t.text, "has_image": t.image is not None, "response": t.response,
                   "reward": t.reward, "reward_terms": t.reward_terms, "parse_error": t.parse_error}
                  for t in episode.turns],
    }


def build_parser() -> argparse.ArgumentParser:
    """The evaluation CLI's options."""
    parser = ArgumentParser(prog="python -m lmmr1_agent.evaluate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", action="append", metavar="ID[:JSON]",
                        help='environment id, optionally with JSON kwargs: \'LMMR1/TextMath-v0:{"difficulty": 3}\'; '
                             "repeat for several (default: LMMR1/TextMath-v0)")
    parser.add_argument("--agent", default="oracle",
                        help="scripted name (idle, random, oracle, game agents), embedded / embedded-vl (the built-in "
                             "SmolLM2-135M and the VLM built on it with the aligned vision tower; embedded-vl-random: "
                             "with a fresh, blind tower), a model folder or hub id, vllm:MODEL, or an "
                             "OpenAI-compatible URL such as http://127.0.0.1:8000/v1 (default: oracle)")
    parser.add_argument("--api-model", help="model name to request from an OpenAI-compatible --agent URL")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY",
                        help="environment variable holding the API key (default: OPENAI_API_KEY)")
    parser.add_argument("--max-concurrency", type=int, default=8, help="parallel API requests (default: 8)")
    parser.add_argument("--request-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="seconds one API request may wait for the server before it is retried "
                             f"(default: {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--request-budget", type=float, default=DEFAULT_RETRY_BUDGET, metavar="SECONDS",
                        help="seconds one API request may take over all its tries, backoff included; past it the "
                             f"evaluation stops with the last failure (default: {DEFAULT_RETRY_BUDGET:g})")
    parser.add_argument("--temperature", type=float, default=0.0, help="sampling temperature; 0 is greedy")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="response length limit in tokens")
    parser.add_argument("--min-pixels", type=int, help="image processor lower bound on pixels per image")
    parser.add_argument("--max-pixels", type=int, help="image processor upper bound on pixels per image")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per environment (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="first env seed; episode k plays seed + k (default: 0)")
    parser.add_argument("--split", choices=["train", "test"], default="test",
                        help="split for envs whose kwargs do not set one (default: test)")
    parser.add_argument("--batch-size", type=int, default=8, help="episodes played side by side (default: 8)")
    parser.add_argument("--history", choices=HISTORY_MODES, default="auto",
                        help="multi-turn prompts: the whole episode (full), the latest observation (last), or what "
                             "the env asks for (auto, the default: last for Football, full elsewhere)")
    parser.add_argument("--demonstration", action=argparse.BooleanOptionalAction, default=None,
                        help="send the env's solved example exchange first (default: the agent's choice)")
    parser.add_argument("--output", type=Path, default=Path("runs/eval"),
                        help="folder for results.json and episodes.jsonl (default: runs/eval)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Evaluate; a bad input or an endpoint that does not answer is one line on stderr and exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _evaluate(args)
    except (ConfigError, AgentError, DatasetError) as exc:  # DatasetError: a row that only fails when it is played
        parser.exit(2, f"{parser.prog}: error: {exc}\n")


def _check(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """The options' values, each env built once with its kwargs, the output folder writable; returns the specs."""
    for option in ("episodes", "batch_size", "max_concurrency", "max_new_tokens", "min_pixels", "max_pixels"):
        check_count(f"--{option.replace('_', '-')}", getattr(args, option))
    check_count("--seed", args.seed, 0)
    check_number("--temperature", args.temperature, low_ok=True)
    check_number("--request-timeout", args.request_timeout)
    check_number("--request-budget", args.request_budget)
    if args.min_pixels and args.max_pixels and args.min_pixels > args.max_pixels:
        raise ConfigError(f"--min-pixels {args.min_pixels} is above --max-pixels {args.max_pixels}")
    specs = []
    for env_id, kwargs in (parse_env_spec(s) for s in (args.env or ["LMMR1/TextMath-v0"])):
        kwargs = {"split": args.split, **kwargs}
        check_env(env_id, kwargs, f"--env {env_id}")  # bad kwargs fail before any model loads
        specs.append((env_id, kwargs))
    check_output_dir(args.output, "--output")
    return specs


def _evaluate(args: argparse.Namespace) -> int:
    specs = _check(args)
    try:
        agent = make_agent(args.agent, seed=args.seed, temperature=args.temperature,
                           max_new_tokens=args.max_new_tokens, demonstration=args.demonstration,
                           api_model=args.api_model, api_key=os.environ.get(args.api_key_env),
                           max_concurrency=args.max_concurrency, min_pixels=args.min_pixels,
                           max_pixels=args.max_pixels, request_timeout=args.request_timeout,
                           request_budget=args.request_budget)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        raise ConfigError(f"--agent {args.agent}: {exc}") from None
    rows, seeds = [], list(range(args.seed, args.seed + args.episodes))
    report = ReportWriter(args.output / "report.html", f"lmmr1 evaluation: {args.agent}")
    try:
        with open(args.output / "episodes.jsonl", "w", encoding="utf-8") as log:
            for env_id, kwargs in specs:
                start, episodes = time.monotonic(), []
                # disable=None: no bar when stderr is not a terminal (a log file gets no carriage-return noise)
                bar = tqdm(total=len(seeds), desc=env_id, unit="ep", disable=True if args.no_progress else None,
                           file=sys.stderr)
                make_env = functools.partial(gym.make, env_id, **kwargs)
                try:
                    for episode in play_episodes(make_env, agent, seeds, env_id=env_id,
                                                 batch_size=args.batch_size, history=args.history,
                                                 demonstration=args.demonstration):
                        log.write(json.dumps(episode_record(episode)) + "\n")
                        report.add(episode)
                        episode.drop_media()  # 108 Football episodes of 160 frames would otherwise hold ~12 GB
                        episodes.append(episode)
                        bar.update(1)
                        bar.set_postfix(ret=f"{sum(e.total_return for e in episodes) / len(episodes):.3f}")
                except BaseException:
                    bar.leave = False  # a failed run's bar is wiped, so its error is the one line left
                    raise
                finally:
                    bar.close()
                rows.append(summarize(env_id, kwargs, episodes, time.monotonic() - start))
    finally:
        agent.close()
    results = {"agent": args.agent, "seed": args.seed, "episodes_per_env": args.episodes, "results": rows}
    (args.output / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    table = format_table(rows)
    page = report.finish(rows, table)
    print(f"agent: {args.agent}")
    print(table)
    print(f"results: {args.output / 'results.json'}  episodes: {args.output / 'episodes.jsonl'}  report: {page}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
