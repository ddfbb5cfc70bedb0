"""Play LMMR1/FootballGame-v0 yourself: ``python -m lmmr1_env.football.play [--scenario R3_T_2] [--seed 0]``.

Keys (GRF's keyboard layout): arrow keys run (two arrows for a diagonal), S short pass, W long pass, A high pass,
D shot, E sprint on/off, Q dribble on/off, space plays no new command for a frame, Esc quits. Each key press is
one turn, so MageBench's macro-actions apply (the same arrow twice runs on; a pass plays until received).
"""

from __future__ import annotations

import argparse

_KEY_ACTIONS = {"s": "action_short_pass", "w": "action_long_pass", "a": "action_high_pass", "d": "action_shot"}
_ARROWS = {(-1, 0): "action_left", (-1, -1): "action_top_left", (0, -1): "action_top", (1, -1): "action_top_right",
           (1, 0): "action_right", (1, 1): "action_bottom_right", (0, 1): "action_bottom",
           (-1, 1): "action_bottom_left"}


def key_to_action(key_name: str, pressed: dict[str, bool], sprint: bool, dribble: bool) -> str | None:
    """The action id for a key press (``pressed`` holds the arrow keys down now), or None for other keys."""
    if key_name in ("left", "right", "up", "down"):
        dx = int(pressed.get("right", False)) - int(pressed.get("left", False))
        dy = int(pressed.get("down", False)) - int(pressed.get("up", False))
        return _ARROWS.get((dx, dy))
    if key_name in _KEY_ACTIONS:
        return _KEY_ACTIONS[key_name]
    if key_name == "e":
        return "action_release_sprint" if sprint else "action_sprint"
    if key_name == "q":
        return "action_release_dribble" if dribble else "action_dribble"
    if key_name == "space":
        return ""
    return None


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr and exit status 2 (as lmmr1_agent.cli's, which lmmr1_env does
    not import)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> None:
    """Open the window and play episodes until Esc or the window is closed; a bad option is one line, status 2."""
    from lmmr1_env.football.env import FootballEnv
    from lmmr1_env.football.scenarios import select_scenarios

    parser = _Parser(prog="python -m lmmr1_env.football.play",
                     description="Play LMMR1/FootballGame-v0 with the keyboard.")
    parser.add_argument("--scenario", default="all", help="scenario id or subset (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="first episode's seed (picks the scenario)")
    parser.add_argument("--size", type=int, nargs=2, default=(540, 960), metavar=("H", "W"), help="window size")
    args = parser.parse_args(argv)
    try:  # the checks FootballEnv makes, before the window opens, each naming its option
        select_scenarios(args.scenario)
    except ValueError as exc:
        parser.error(f"--scenario {args.scenario}: {exc}")
    try:
        env = FootballEnv(scenario=args.scenario, image_size=tuple(args.size), render_mode="human")
    except ValueError as exc:
        parser.error(f"--size {args.size[0]} {args.size[1]}: {exc}")
    import pygame

    seed, total = args.seed, 0.0
    env.reset(seed=seed)
    print(f"scenario {env.scenario_id}: arrows run, S/W/A pass, D shoot, E sprint, Q dribble, Esc quits")
    names = {pygame.K_LEFT: "left", pygame.K_RIGHT: "right", pygame.K_UP: "up", pygame.K_DOWN: "down"}
    running = True
    while running:
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                running = False
                break
            if event.type != pygame.KEYDOWN:
                continue
            keys = pygame.key.get_pressed()
            pressed = {name: bool(keys[code]) for code, name in names.items()}
            action = key_to_action(pygame.key.name(event.key), pressed, env.sprint, env.dribble)
            if action is None:
                continue
            _, reward, terminated, truncated, info = env.step(f"<answer>{action}</answer>" if action else "")
            total += reward
            if terminated or truncated:
                print(f"{env.scenario_id}: {info['end']} after {info['frame']} frames, return {total:.2f}")
                seed, total = seed + 1, 0.0
                env.reset(seed=seed)
        pygame.time.wait(10)
    env.close()


if __name__ == "__main__":
    main()
