"""A reward-curve PNG drawn with PIL (no plotting library needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def reward_curve(path: Path, title: str, steps: Sequence[int], series: dict[str, Sequence[float]],
                 evals: Sequence[tuple[int, float, float]] = (), size: tuple[int, int] = (720, 420)) -> Path:
    """Plot ``series`` (name → value per step) and held-out ``evals`` (step, mean, stderr) with error bars."""
    width, height = size
    left, right, top, bottom = 64, 20, 40, 50
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font, small = ImageFont.load_default(size=16), ImageFont.load_default(size=12)
    values = [v for vs in series.values() for v in vs] + [m + s for _, m, s in evals] + [m - s for _, m, s in evals]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-6:
        low, high = low - 0.5, high + 0.5
    last = max([*steps, *(s for s, _, _ in evals), 1])

    def xy(step: float, value: float) -> tuple[float, float]:
        x = left + (width - left - right) * step / last
        y = top + (height - top - bottom) * (1 - (value - low) / (high - low))
        return x, y

    draw.text((left, 10), title, fill="black", font=font)
    draw.rectangle([left, top, width - right, height - bottom], outline=(120, 120, 120))
    for k in range(5):
        value = low + (high - low) * k / 4
        _, y = xy(0, value)
        draw.line([left - 4, y, left, y], fill="black")
        draw.text((6, y - 7), f"{value:.2f}", fill="black", font=small)
    draw.text((width // 2 - 20, height - 24), "step", fill="black", font=small)
    draw.text((width - right - 30, height - bottom + 4), str(last), fill="black", font=small)
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    for k, (name, vs) in enumerate(series.items()):
        colour = colours[k % len(colours)]
        points = [xy(s, v) for s, v in zip(steps, vs)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        draw.text((left + 10 + 170 * k, top + 6), f"— {name}", fill=colour, font=small)
    for step, mean, se in evals:
        x, y = xy(step, mean)
        _, y_hi = xy(step, mean + se)
        _, y_lo = xy(step, mean - se)
        draw.line([x, y_hi, x, y_lo], fill="black", width=2)
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill="black")
    if evals:
        draw.text((left + 10, top + 22), "● held-out eval (± 1 s.e.)", fill="black", font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
