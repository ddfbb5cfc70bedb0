"""A self-contained HTML report of an evaluation: the results table and every episode, browsable.

Images are written beside the page as PNG files (``images/``) and referenced relatively, so the report
opens straight from disk and stays small. Long runs keep images for the first :data:`IMAGE_EPISODES`
episodes of each env and, within an episode, for its first and last turns (:data:`IMAGE_TURNS`); every
turn's text is always there.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lmmr1_agent.rollout import Episode

#: Episodes per env whose observation images are written.
IMAGE_EPISODES = 24
#: Turns per episode whose images are written: half from the start, half from the end.
IMAGE_TURNS = 16

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 1rem 0; } td, th { border: 1px solid #ccc; padding: .3rem .6rem; }
th { background: #f3f3f3; }
details { border: 1px solid #ddd; border-radius: 6px; margin: .5rem 0; padding: .4rem .8rem; }
summary { cursor: pointer; } .ok { color: #0a7a2f; } .bad { color: #b3261e; }
pre { white-space: pre-wrap; word-break: break-word; background: #f7f7f7; padding: .5rem; border-radius: 4px; }
img.frame { max-width: 448px; border: 1px solid #ccc; display: block; margin: .4rem 0; }
.terms span { margin-right: 1rem; } .error { color: #b3261e; font-style: italic; }
"""

_SCRIPT = """
function filterEpisodes(kind) {
  for (const d of document.querySelectorAll('details.episode')) {
    d.style.display = (kind === 'all' || d.dataset.outcome === kind) ? '' : 'none';
  }
}
"""


def _esc(text: Any) -> str:
    return html.escape(str(text))


def _save_image(image: np.ndarray, folder: Path, name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(folder / name)
    return f"{folder.name}/{name}"


class ReportWriter:
    """Builds the report one episode at a time: images go to disk at once, so memory stays flat."""

    def __init__(self, path: Path, title: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.images = self.path.parent / "images"
        self.title = title
        self.parts: list[str] = []
        self.count = 0
        self.shown_per_env: dict[str, int] = {}

    def add(self, episode: Episode) -> None:
        """Append one episode (its images are written now; the episode may drop them afterwards)."""
        k, self.count = self.count, self.count + 1
        self.shown_per_env[episode.env_id] = self.shown_per_env.get(episode.env_id, 0) + 1
        with_images = self.shown_per_env[episode.env_id] <= IMAGE_EPISODES
        n_turns, parts = len(episode.turns), self.parts
        outcome = "success" if episode.success else "failure"
        mark = "ok" if episode.success else "bad"
        terms = "".join(f"<span>{_esc(n)} = {v:.3f}</span>" for n, v in episode.reward_terms.items())
        parts.append(f"<details class='episode' data-outcome='{outcome}'><summary>{_esc(episode.env_id)} · seed "
                     f"{episode.seed} · return <b class='{mark}'>{episode.total_return:.3f}</b> · "
                     f"{n_turns} turn(s)</summary>")
        parts.append(f"<p class='terms'>{terms}</p><p><b>system prompt</b></p><pre>{_esc(episode.system_prompt)}</pre>")
        for t, turn in enumerate(episode.turns):
            parts.append(f"<h4>turn {t + 1}</h4>")
            keep = t < IMAGE_TURNS // 2 or t >= n_turns - IMAGE_TURNS // 2
            if turn.image is not None and with_images and keep:
                safe_env = "".join(c if c.isalnum() else "_" for c in episode.env_id)
                src = _save_image(turn.image, self.images, f"{safe_env}-{k}-{t}.png")
                parts.append(f"<img class='frame' src='{_esc(src)}' alt='observation of turn {t + 1}'>")
            parts.append(f"<p><b>observation</b></p><pre>{_esc(turn.text)}</pre>")
            parts.append(f"<p><b>response</b></p><pre>{_esc(turn.response)}</pre>")
            turn_terms = ", ".join(f"{n} = {v:.3f}" for n, v in turn.reward_terms.items())
            parts.append(f"<p>reward {turn.reward:.3f} ({_esc(turn_terms)})</p>")
            if turn.parse_error:
                parts.append(f"<p class='error'>could not read the response: {_esc(turn.parse_error)}</p>")
        parts.append("</details>")

    def finish(self, rows: Sequence[dict], table_text: str) -> Path:
        """Write the page with the results table on top; returns its path."""
        head = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(self.title)}</title>",
                f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>",
                f"<h1>{_esc(self.title)}</h1>", "<h2>Results</h2>", f"<pre>{_esc(table_text)}</pre>",
                "<details><summary>results as JSON</summary>",
                f"<pre>{_esc(json.dumps(list(rows), indent=2))}</pre></details>",
                "<h2>Episodes</h2><p>Show: <select onchange='filterEpisodes(this.value)'>"
                "<option value='all'>all</option><option value='success'>successes</option>"
                "<option value='failure'>failures</option></select></p>"]
        self.path.write_text("\n".join([*head, *self.parts, "</body></html>"]), encoding="utf-8")
        return self.path


def write_report(path: Path, title: str, rows: Sequence[dict], episodes: Sequence[Episode],
                 table_text: str) -> Path:
    """Write ``path`` (an ``.html`` file) and its ``images/`` folder for ``episodes``; returns ``path``."""
    writer = ReportWriter(path, title)
    for episode in episodes:
        writer.add(episode)
    return writer.finish(rows, table_text)
