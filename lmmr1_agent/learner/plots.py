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
    low, high = (min(0.0, *values), max(values)) if values else (0.0, 1.0)
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
    for k in range(5):
        step = round(last * k / 4)
        x, _ = xy(step, low)
        draw.line([x, height - bottom, x, height - bottom + 4], fill="black")
        draw.text((x - 6, height - bottom + 6), str(step), fill="black", font=small)
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    for k, (name, vs) in enumerate(series.items()):
        colour = colours[k % len(colours)]
        points = [xy(s, v) for s, v in zip(steps, vs)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        x0 = left + 10 + 170 * k  # the bundled font has no dash or bullet glyphs: draw the legend marks
        draw.line([x0, top + 13, x0 + 18, top + 13], fill=colour, width=3)
        draw.text((x0 + 24, top + 6), name, fill=colour, font=small)
    for step, mean, se in evals:
        x, y = xy(step, mean)
        _, y_hi = xy(step, mean + se)
        _, y_lo = xy(step, mean - se)
        draw.line([x, y_hi, x, y_lo], fill="black", width=2)
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill="black")
    if evals:
        draw.ellipse([left + 14, top + 27, left + 22, top + 35], fill="black")
        draw.text((left + 34, top + 24), "held-out eval (+/- 1 s.e.)", fill="black", font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
