"""Football speed on one core beside the real engine: frames/s without and with rendering, and env turns/s.

- ``simulation``: ``Match.step`` (physics, AI, possession) plus MageBench's reward, random commands each frame
  (a direction; a kick with probability 0.05), over MageBench's 108 scenarios in turn.
- ``+ render``: the same with a ``render_frame`` picture at the env's default size (360 × 640) every frame.
- ``env.step``: whole turns of ``LMMR1/FootballGame-v0`` (parse, macro-actions, reward, observation image)
  for a uniformly random policy.
- the peer, in the same run: Google Research Football 2.10.2 (the engine MageBench plays on) on the same 108
  scenarios (positions, roles and ``builder.config()`` from ``envs/football/magebench_scenarios.json``), the same
  random command stream (GRF actions 1-8 and 9-12), ``representation="raw"``; without rendering, and with
  ``render=True`` at ``render_resolution_x=640`` (640 × 360 frames, OpenGL under Xvfb).

    python bench/bench_football.py [--seconds 5] [--peer-python /tmp/gfootball-peer/bin/python]

The peer lives in its own virtual environment, built from its sdist (4-8 minutes):
``apt-get install cmake build-essential libgl1-mesa-dev libsdl2-dev libsdl2-image-dev libsdl2-ttf-dev
libsdl2-gfx-dev libboost-all-dev libdirectfb-dev mesa-utils xvfb``, then
``python3 -m venv /tmp/gfootball-peer && export PATH=/tmp/gfootball-peer/bin:$PATH && pip install wheel setuptools
psutil six absl-py scipy gym==0.26.2 pygame && pip install --no-build-isolation gfootball==2.10.2 "numpy<2"
opencv-python==4.11.0.86`` (its build script imports psutil from the ``python3`` on ``PATH``; later OpenCV
releases need numpy 2, which gym 0.26 refuses). Without it only our numbers are printed.

The two simulations differ by design (docs/design.md, "Football"), so no frame can be compared; what must agree
is the episode the random stream plays: the script exits 1 when our mean episode length in frames is more than
25 % (the fidelity tolerance, ``bench/football_fidelity.py``) from the engine's, or when the engine's frames are
not 360 × 640 pictures. Prints the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from machine import describe  # bench/machine.py, beside this script

from lmmr1_env.football.actions import ACTION_IDS, DIRECTIONS, KICKS
from lmmr1_env.football.env import FootballEnv
from lmmr1_env.football.render import render_frame
from lmmr1_env.football.reward import FrameView, RewardTracker
from lmmr1_env.football.scenarios import load_scenarios
from lmmr1_env.football.sim import Command, Match

SIZE = (360, 640)
#: Our mean episode length under the random stream may differ from the engine's by this share (the fidelity
#: tolerance of ``bench/football_fidelity.py``) before the script fails.
TOLERANCE = 0.25
#: The stream: a direction each frame, a kick instead with this probability.
KICK_P = 0.05
FRAME_CAP = 400
#: Episodes both sides play at least without rendering (every scenario once), for the episode-length check.
MIN_EPISODES = 108
ROOT = Path(__file__).resolve().parents[1]

# Runs inside the peer's venv (gfootball 2.10.2): the same scenarios as GRF scenario modules, the same stream.
PEER_CODE = r"""
import json, sys, time, types, warnings
warnings.filterwarnings("ignore")
import numpy as np
from gfootball.env import config, football_env
import gfootball.scenarios as sc
job = json.loads(sys.argv[1])
rows = json.load(open(job["scenarios"]))["scenarios"]

def module(row):
    def build_scenario(builder):
        for key, value in row["config"].items():
            setattr(builder.config(), key, value)
        builder.SetBallPosition(*row["ball"])
        for team, players in ((sc.Team.e_Left, row["left_team"]), (sc.Team.e_Right, row["right_team_as_written"])):
            builder.SetTeam(team)
            for p in players:
                builder.AddPlayer(p["x"], p["y"], getattr(sc, "e_PlayerRole_" + p["role"]))
    mod = types.ModuleType("gfootball.scenarios.lmmr1_" + row["id"])
    mod.build_scenario = build_scenario
    sys.modules[mod.__name__] = mod
    return mod.__name__.rsplit(".", 1)[1]

levels = [module(row) for row in rows]
out = {}
for render in job["modes"]:  # GRF allows one rendering engine per process: one env, the level set per episode
    # FootballEnv itself, as create_environment builds it for one controlled player and raw observations, without
    # the gym wrappers (gym 0.26's expect the 5-tuple step GRF 2.10 does not return)
    env = football_env.FootballEnv(config.Config({
        "level": levels[0], "players": ["agent:left_players=1,right_players=0"], "dump_full_episodes": False,
        "dump_scores": False, "write_video": False, "render_resolution_x": job["size"][1],
        "render_resolution_y": job["size"][0]}))
    if render:
        env.render()
    rng = np.random.default_rng(0)
    frames, episodes, lengths, shapes, start = 0, 0, [], set(), time.perf_counter()
    while time.perf_counter() - start < job["seconds"] or episodes < job["min_episodes"]:
        env._config["level"] = levels[episodes % len(levels)]
        env.reset()
        episodes += 1
        for n in range(job["cap"]):
            kick = int(rng.integers(4)) if rng.random() < job["kick_p"] else None
            direction = int(rng.integers(8))
            obs, _, done, _ = env.step(9 + kick if kick is not None else 1 + direction)
            frames += 1
            if render:
                shapes.add(tuple(obs[0]["frame"].shape) if "frame" in obs[0] else None)
            if done:
                break
        lengths.append(frames - first)
    elapsed = time.perf_counter() - start
    out["render" if render else "raw"] = {"fps": frames / elapsed, "lengths": lengths,
                                          "shapes": sorted(map(str, shapes))}
    env.close()
print(json.dumps(out))
"""


def simulated_frames(seconds: float, render: bool, min_episodes: int) -> dict:
    """Frames per second of match + reward (and a picture per frame when ``render``) over at least ``seconds`` and
    ``min_episodes`` episodes, and each episode's length in frames under the random stream."""
    rng = np.random.default_rng(0)
    scenarios = list(load_scenarios().values())
    directions = [np.array(v) for v in DIRECTIONS.values()]
    kicks = list(KICKS.values())
    frames, start, episode, lengths = 0, time.perf_counter(), 0, []
    while time.perf_counter() - start < seconds or episode < min_episodes:
        match = Match.from_scenario(scenarios[episode % len(scenarios)], np.random.default_rng(episode))
        episode += 1
        view = _view(match)
        tracker = RewardTracker(view)
        controlled, first = match.owner, frames
        for _ in range(FRAME_CAP):
            kick = kicks[int(rng.integers(4))] if rng.random() < KICK_P else None
            match.step(Command(direction=directions[int(rng.integers(8))], kick=kick), controlled)
            tracker.frame(_view(match), "action_right")
            if 0 <= match.owner < match.n_left:
                controlled = match.owner
            if render:
                render_frame(match, controlled, SIZE, "frame")
            frames += 1
            if match.over or match.owner_team == 1:
                break
        lengths.append(frames - first)
    return {"fps": frames / (time.perf_counter() - start), "lengths": lengths}


def _view(match: Match) -> FrameView:
    return FrameView(ball=match.ball[:2].copy(), owner_team=match.owner_team, owner=match.owner,
                     opponents=match.pos[match.n_left:], scored=match.goal > 0, steps_left=FRAME_CAP - match.frame)


def env_turns(seconds: float) -> tuple[float, float]:
    """(turns per second, frames per second) of the env under a uniformly random policy."""
    env = FootballEnv(image_size=SIZE)
    rng = np.random.default_rng(0)
    turns = frames = seed = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.reset(seed=seed)
        seed += 1
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(f"<answer>{ACTION_IDS[int(rng.integers(16))]}</answer>")
            turns += 1
            frames += info["frames"]
            done = terminated or truncated
    elapsed = time.perf_counter() - start
    return turns / elapsed, frames / elapsed


def run_peer(peer_python: str, render: bool, seconds: float) -> dict | None:
    """The engine's figures for one mode, run in the peer's interpreter (under ``xvfb-run`` to render when there is
    no display); None, with a line saying why, when it is not installed or fails."""
    if not Path(peer_python).exists():
        print(f"(peer not found at {peer_python}: see this file's docstring to install it)")
        return None
    job = {"scenarios": str(ROOT / "envs" / "football" / "magebench_scenarios.json"), "modes": [render],
           "seconds": seconds, "cap": FRAME_CAP, "kick_p": KICK_P, "size": SIZE,
           "min_episodes": 0 if render else MIN_EPISODES}
    command = [peer_python, "-c", PEER_CODE, json.dumps(job)]
    if render and not os.environ.get("DISPLAY"):
        if shutil.which("xvfb-run") is None:
            print("(the engine renders with OpenGL on a display: install xvfb for its rendering figure)")
            return None
        command = ["xvfb-run", "-a", "-s", "-screen 0 1280x720x24", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600 + 4 * seconds)
    if done.returncode != 0:
        print(f"(peer failed: {done.stderr[-1500:]})")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["render" if render else "raw"]


def main() -> int:
    """Print both sides' speeds and their ratios; 1 when the random stream's episodes disagree with the engine's
    beyond the fidelity tolerance, or the engine's pictures are not the env's size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    parser.add_argument("--peer-python", default="/tmp/gfootball-peer/bin/python",
                        help="the interpreter of the venv gfootball is built in (see the docstring)")
    args = parser.parse_args()
    print(f"machine: {describe()}; numpy {np.__version__}")
    print(f"{'frames/s':34s} {'lmmr1':>8s} {'gfootball':>10s} {'ratio':>7s} {'frames/episode (n)':>20s}")
    failures = []
    for render, label in ((False, "simulation + reward, no rendering"), (True, "+ a 360 x 640 picture per frame")):
        ours = simulated_frames(args.seconds, render, 0 if render else MIN_EPISODES)
        peer = run_peer(args.peer_python, render, args.seconds)
        theirs = peer["fps"] if peer else float("nan")
        lengths = ""
        if peer and not render:  # the same episodes on both sides: the scenarios in turn, the first n of each
            n = min(len(ours["lengths"]), len(peer["lengths"]))
            mine, engine = float(np.mean(ours["lengths"][:n])), float(np.mean(peer["lengths"][:n]))
            lengths = f"{mine:.1f} / {engine:.1f} ({n})"
            if abs(mine / engine - 1) > TOLERANCE:
                failures.append(f"mean episode {mine:.1f} frames vs the engine's {engine:.1f} over the same {n} "
                                f"episodes, more than {TOLERANCE:.0%} apart")
        print(f"{label:34s} {ours['fps']:8.0f} {theirs:10.1f} {ours['fps'] / theirs:6.0f}x {lengths:>20s}")
        if peer and render and peer["shapes"] != [str((*SIZE, 3))]:
            failures.append(f"the engine's frames were {peer['shapes']}, not {(*SIZE, 3)}")
    turns, frames = env_turns(args.seconds)
    print(f"env.step, random policy: {turns:.0f} turns/s ({frames:.0f} frames/s, one image per turn)")
    print("  (both sides: MageBench's 108 scenarios in turn, a random direction each frame or a kick with p = "
          f"{KICK_P}, up to {FRAME_CAP} frames, episodes end on a goal, out of play or possession change;\n"
          f"   frames/episode: lmmr1 / gfootball over the same n episodes, which must agree within {TOLERANCE:.0%};\n"
          "   the engine renders with OpenGL, here Mesa's software rasteriser under Xvfb; ratio = lmmr1 / gfootball)")
    for failure in failures:
        print(f"DISAGREE: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
