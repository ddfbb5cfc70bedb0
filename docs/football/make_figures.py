"""Regenerate the pictures in this folder: ``python docs/football/make_figures.py``.

- ``start_frame.png``: the first observation of scenario R2_T_1 at 720 × 1280.
- ``heuristic_strip.png``: eight turns of a heuristic episode that ends in a goal (2 × 4 grid).
- ``heuristic_episode.gif``: every simulated frame of that episode (10 frames per second of play).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from lmmr1_agent.agents.football import FootballHeuristicAgent
from lmmr1_env.football.env import FootballEnv
from lmmr1_env.football.render import render_frame

HERE = Path(__file__).resolve().parent


def start_frame() -> None:
    """The large start frame."""
    env = FootballEnv(scenario="R2_T_1", image_size=(720, 1280))
    obs, _ = env.reset(seed=0)
    Image.fromarray(obs["image"]).save(HERE / "start_frame.png", optimize=True)


def heuristic_episode(min_turns: int = 8) -> None:
    """A heuristic episode that scores after at least ``min_turns`` turns, as a strip and a GIF."""
    env = FootballEnv(scenario="all", image_size=(360, 640))
    agent = FootballHeuristicAgent()
    for seed in range(324):
        obs, info = env.reset(seed=seed)
        turns, gif = [(obs["image"], "start")], [Image.fromarray(obs["image"])]
        done = False
        while not done:
            response = agent.act([[]], [info])[0].text
            action = response.split("<answer>")[1].split("</answer>")[0]
            before = env.match.frame
            play_frame = env._frame

            def recording_frame(name: str, play_frame=play_frame, gif=gif, action=action) -> bool:
                over = play_frame(name)
                gif.append(Image.fromarray(render_frame(env.match, env.controlled, (270, 480),
                                                        f"frame {env.match.frame}  {action}")))
                return over

            env._frame = recording_frame
            obs, reward, terminated, truncated, info = env.step(response)
            del env._frame
            turns.append((obs["image"], f"{action} ({env.match.frame - before} frames, {reward:+.1f})"))
            done = terminated or truncated
        if info["end"] == "goal" and len(turns) >= min_turns + 1:
            break
    picks = [turns[round(i * (len(turns) - 1) / 7)] for i in range(8)]
    tile_w, tile_h, caption = 480, 270, 22
    strip = Image.new("RGB", (4 * tile_w, 2 * (tile_h + caption)), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for k, (image, text) in enumerate(picks):
        x, y = (k % 4) * tile_w, (k // 4) * (tile_h + caption)
        strip.paste(Image.fromarray(image).resize((tile_w, tile_h), Image.Resampling.LANCZOS), (x, y + caption))
        draw.text((x + 6, y + 4), f"{k + 1}. {text}", fill=(0, 0, 0))
    strip.save(HERE / "heuristic_strip.png", optimize=True)
    gif[0].save(HERE / "heuristic_episode.gif", save_all=True, append_images=gif[1:], duration=100, loop=0,
                optimize=True)
    print(f"scenario {env.scenario_id} seed {seed}: {len(turns) - 1} turns, {env.match.frame} frames, "
          f"{info['end']}")


if __name__ == "__main__":
    start_frame()
    heuristic_episode()
