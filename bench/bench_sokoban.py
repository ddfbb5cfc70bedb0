"""Sokoban side by side with gym-sokoban: steps/s with and without rendering, level generation, solver time.

    python bench/bench_sokoban.py [--peer-python /tmp/sokoban-peer/bin/python] [--seconds 2]

The peer (gym-sokoban 0.0.6 on gym 0.26.2, numpy<2) lives in its own virtual environment:
``python3 -m venv /tmp/sokoban-peer && /tmp/sokoban-peer/bin/pip install gym==0.26.2 gym-sokoban==0.0.6 "numpy<2"``.
Its part runs in a subprocess; without it only our numbers are printed. The script also replays random action
sequences on rooms the peer generated and compares every step reward with ours, and exits 1 on any difference
(``--no-check-rewards`` skips that).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lmmr1_env.sokoban.env import SokobanEnv  # noqa: E402
from lmmr1_env.sokoban.generate import PRESETS, generate_level  # noqa: E402
from lmmr1_env.sokoban.rules import MOVES, Level, apply_move, boxes_on_target, is_solved, step_reward  # noqa: E402
from lmmr1_env.sokoban.solver import solve  # noqa: E402

PEER_PRESETS = {"small-v0": "SokobanEnv_Small0", "small-v1": "SokobanEnv_Small1", "v0": "SokobanEnv1",
                "v1": "SokobanEnv", "large-v0": "SokobanEnv_Large0"}

# Runs inside the peer's venv. gym-sokoban draws levels from the global `random` / `np.random`.
PEER_CODE = r"""
import json, random, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from gym_sokoban.envs import sokoban_env_variations as variations
job = json.loads(sys.argv[1])
out = {}
def make(cls_name, seed):
    random.seed(seed); np.random.seed(seed)
    return getattr(variations, cls_name)()
if job["task"] == "speed":
    env = make("SokobanEnv_Small0", 0)
    for mode in ("rgb_array", "raw"):
        if mode == "raw":  # gym-sokoban 0.0.6 renders in every step: a no-op render() times the rules alone
            env.render = lambda *args, **kwargs: None
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < job["seconds"]:
            action = 1 + n % 4
            _, _, done, _ = env.step(action)
            n += 1
            if done:
                env.num_env_steps = 0
        out[mode] = n / (time.perf_counter() - start)
    for preset, cls_name in job["presets"].items():
        times = []
        for seed in range(job["resets"]):
            start = time.perf_counter()
            make(cls_name, seed)
            times.append(time.perf_counter() - start)
        out["reset_" + preset] = times
elif job["task"] == "rewards":
    rooms = []
    for seed in range(job["rooms"]):
        env = make(job["cls"], seed)
        env.render = lambda *args, **kwargs: None
        fixed, state = env.room_fixed.astype(int).tolist(), env.room_state.astype(int).tolist()
        rng = random.Random(seed)
        actions = [rng.randint(1, 4) for _ in range(job["actions"])]
        rewards, dones = [], []
        for action in actions:
            _, reward, done, _ = env.step(action)
            rewards.append(reward); dones.append(done)
            if done:
                break
        rooms.append({"room_fixed": fixed, "room_state": state, "actions": actions[:len(rewards)],
                      "rewards": rewards, "dones": dones})
    out["rooms"] = rooms
print(json.dumps(out))
"""


def run_peer(peer_python: str, job: dict) -> dict | None:
    """Run PEER_CODE in the peer's interpreter; None (with a note) when it is not installed."""
    if not Path(peer_python).exists():
        print(f"(peer not found at {peer_python}: see this file's docstring to install it)")
        return None
    done = subprocess.run([peer_python, "-c", PEER_CODE, json.dumps(job)], capture_output=True, text=True,
                          timeout=1800)
    if done.returncode != 0:
        print(f"(peer failed: {done.stderr[-1500:]})")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def our_steps_per_second(seconds: float) -> dict[str, float]:
    """Env steps/s in step mode (parse, move, reward, 224x224 frame, info) and bare rule steps/s (no frame)."""
    env = SokobanEnv(mode="step", levels="small-v0", max_steps=10**9)
    env.reset(seed=0)
    actions = [f"<answer>{m}</answer>" for m in ("Up", "Down", "Left", "Right")]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(actions[n % 4])
        n += 1
        if terminated or truncated:
            env.reset(seed=n)
    rendered = n / (time.perf_counter() - start)
    level = generate_level("small-v0", "train", 0)
    state, fixed = level.room_state.copy(), level.room_fixed
    n, start = 0, time.perf_counter()
    on_target = boxes_on_target(state)
    while time.perf_counter() - start < seconds:
        apply_move(state, fixed, MOVES[n % 4])
        now = boxes_on_target(state)
        step_reward(on_target, now, is_solved(state, fixed))
        on_target = now
        n += 1
    return {"rgb_array": rendered, "raw": n / (time.perf_counter() - start)}


def check_rewards(peer_python: str, rooms: int, actions: int) -> int:
    """Replay the peer's random action sequences on its own rooms with our rules; the number of steps whose
    reward or end differs from the peer's."""
    codes = {1: "Up", 2: "Down", 3: "Left", 4: "Right"}
    total = 0
    for preset in ("small-v0", "small-v1"):  # the peer takes ~5-25 s to generate one larger room
        peer = run_peer(peer_python, {"task": "rewards", "cls": PEER_PRESETS[preset], "rooms": rooms,
                                      "actions": actions})
        if peer is None:
            return 0
        steps = mismatches = solved = 0
        peer_moves, our_moves = [], []
        for seed, room in enumerate(peer["rooms"]):
            fixed = np.array(room["room_fixed"], dtype=np.uint8)
            state = np.array(room["room_state"], dtype=np.uint8)
            level = Level(fixed, state)
            # Difficulty side by side: optimal plan lengths of the peer's rooms and of ours.
            peer_moves.append(len(solve(fixed, state).moves or []))
            ours = generate_level(preset, "train", seed)
            our_moves.append(len(solve(ours.room_fixed, ours.room_state).moves or []))
            on_target = boxes_on_target(state)
            for action, peer_reward, peer_done in zip(room["actions"], room["rewards"], room["dones"]):
                apply_move(state, level.room_fixed, codes[action])
                now = boxes_on_target(state)
                done = is_solved(state, level.room_fixed)
                reward = step_reward(on_target, now, done)
                on_target = now
                steps += 1
                solved += done
                mismatches += reward != peer_reward or done != peer_done
        print(f"reward check {preset}: {len(peer['rooms'])} peer rooms, {steps} random steps, "
              f"{mismatches} mismatching rewards, {solved} solves; optimal moves mean/max: gym-sokoban "
              f"{np.mean(peer_moves):.1f}/{max(peer_moves)}, lmmr1 {np.mean(our_moves):.1f}/{max(our_moves)}")
        total += mismatches
    return total


def main() -> int:
    """Print the benchmark table and the ratios to gym-sokoban; 1 when a step reward differs from the peer's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", default="/tmp/sokoban-peer/bin/python")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per steps/s measurement")
    parser.add_argument("--levels", type=int, default=10, help="levels per preset for generation and solver")
    parser.add_argument("--peer-resets", type=int, default=3, help="gym-sokoban resets timed per preset (slow)")
    parser.add_argument("--no-check-rewards", dest="check_rewards", action="store_false",
                        help="skip replaying the peer's rooms and comparing every step reward (on by default)")
    args = parser.parse_args()

    ours = our_steps_per_second(args.seconds)
    peer = run_peer(args.peer_python, {"task": "speed", "seconds": args.seconds, "presets": PEER_PRESETS,
                                       "resets": args.peer_resets})
    print(f"{'steps/s':28s} {'lmmr1':>10s} {'gym-sokoban':>12s} {'ratio':>7s}")
    for mode, label in (("rgb_array", "with rendering"), ("raw", "without rendering")):
        theirs = peer[mode] if peer else float("nan")
        print(f"{label:28s} {ours[mode]:10.0f} {theirs:12.0f} {ours[mode] / theirs:6.1f}x")
    print("  (lmmr1 with rendering: full env.step in step mode, 224x224 frame; without: rules + reward only."
          "\n   gym-sokoban: step() with its rgb_array frame (native 16 px/cell), or with a no-op render().)")

    print(f"\n{'preset':10s} {'generate ms':>12s} {'peer ms':>9s} {'ratio':>7s} {'solve ms mean/max':>18s} "
          f"{'states mean':>12s} {'moves mean/max':>15s}")
    for preset in PRESETS:
        gen, solve_t, states, moves = [], [], [], []
        for seed in range(args.levels):
            start = time.perf_counter()
            level = generate_level(preset, "train", seed)
            gen.append(time.perf_counter() - start)
            result = solve(level.room_fixed, level.room_state, time_limit=60)
            solve_t.append(result.seconds)
            states.append(result.states)
            moves.append(len(result.moves) if result.moves else float("nan"))
        peer_gen = float(np.mean(peer["reset_" + preset])) if peer else float("nan")
        mean_gen = float(np.mean(gen))
        print(f"{preset:10s} {mean_gen * 1e3:12.1f} {peer_gen * 1e3:9.1f} {peer_gen / mean_gen:6.1f}x "
              f"{np.mean(solve_t) * 1e3:8.1f} / {max(solve_t) * 1e3:7.1f} {np.mean(states):12.0f} "
              f"{np.nanmean(moves):7.1f} / {np.nanmax(moves):3.0f}")
    print("  (generate: our reset's level generation vs gym-sokoban's reset; ratio = peer time / ours."
          "\n   gym-sokoban has no solver.)")
    if args.check_rewards:
        print()
        if check_rewards(args.peer_python, rooms=20, actions=150):
            print("DISAGREEMENT: some step rewards differ from gym-sokoban's")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
