"""The suite's plots (matplotlib, drawn off-screen): a training run's reward curve and the alignment's curve."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

#: Points an exponential moving average of the training series spans (raw values are drawn faint behind it).
SMOOTHING = 0.6


def _figure(title: str, x_label: str, y_label: str, size: tuple[float, float] = (7.6, 4.4)):
    import matplotlib

    matplotlib.use("Agg")  # no display needed; safe to call again
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=size, dpi=100)
    axes.set_title(title, fontsize=11, loc="left")
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.grid(alpha=0.3)
    return figure, axes


def _save(figure, path: Path, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout(rect=rect)  # rect: the part of the figure the axes may fill (room for a legend outside)
    figure.savefig(path)
    plt.close(figure)
    return path


def smooth(values: Sequence[float], weight: float = SMOOTHING) -> list[float]:
    """Exponential moving average, debiased at the start (TensorBoard's smoothing)."""
    out, average = [], 0.0
    for index, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**index))
    return out


def reward_curve(path: Path, title: str, steps: Sequence[int], series: dict[str, Sequence[float]],
                 evals: Sequence[tuple[int, float, float]] = ()) -> Path:
    """Each of ``series`` (name → value per step) raw and smoothed, and the held-out ``evals`` (step, mean,
    standard error) with error bars; integer step ticks."""
    from matplotlib.ticker import MaxNLocator

    figure, axes = _figure(title, "step", "value")
    for index, (name, values) in enumerate(series.items()):
        colour = f"C{index}"
        axes.plot(steps, values, color=colour, alpha=0.25, linewidth=1)
        axes.plot(steps, smooth(values), color=colour, linewidth=2, label=f"{name} (smoothed)")
    if evals:
        axes.errorbar([s for s, _, _ in evals], [m for _, m, _ in evals], yerr=[e for _, _, e in evals], fmt="o",
                      color="black", capsize=4, label="held-out eval (± 1 s.e.)")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if series or evals:
        axes.legend(fontsize=9)
    return _save(figure, path)


def share_curve(path: Path, title: str, series: dict[str, Sequence[tuple[float, float]]], x_label: str) -> Path:
    """Lines of (x, share) points, the y axis in per cent, the legend outside on the right."""
    from matplotlib.ticker import PercentFormatter

    figure, axes = _figure(title, x_label, "held-out", size=(9.0, 4.6))
    for index, (name, points) in enumerate(series.items()):  # past ten colours, dashed lines tell lines apart
        axes.plot([x for x, _ in points], [y for _, y in points], marker="o", markersize=3, label=name,
                  color=f"C{index % 10}", linestyle="-" if index < 10 else "--")
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_ylim(0, 1.02)
    if series:
        axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(figure, path)


def arm_bars(path: Path, title: str, panels: dict[str, dict[str, tuple[float, float]]]) -> Path:
    """One panel per metric (name → arm → (mean, standard error)), a bar per arm with its error bar, arms in the
    same colour in every panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    arms = list(dict.fromkeys(arm for bars in panels.values() for arm in bars))
    columns = max(1, min(3, len(panels)))
    rows = max(1, -(-len(panels) // columns))
    figure, grid = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows + 0.6), dpi=100, squeeze=False)
    figure.suptitle(title, fontsize=11, x=0.01, ha="left")
    for axes, (name, bars) in zip(grid.flat, panels.items()):
        positions = [arms.index(arm) for arm in bars]
        axes.bar(positions, [m for m, _ in bars.values()], yerr=[e for _, e in bars.values()], capsize=3,
                 color=[f"C{p % 10}" for p in positions])
        axes.set_title(name, fontsize=10)
        axes.set_xticks(range(len(arms)), [str(i + 1) for i in range(len(arms))])
        axes.grid(alpha=0.3, axis="y")
    for axes in list(grid.flat)[len(panels):]:
        axes.axis("off")
    handles = [Patch(color=f"C{i % 10}", label=f"{i + 1}: {arm}") for i, arm in enumerate(arms)]
    figure.legend(handles=handles, loc="lower center", ncol=min(3, max(1, len(arms))), fontsize=8, frameon=False)
    return _save(figure, path, rect=(0, 0.04 + 0.03 * (-(-len(arms) // 3)), 1, 0.95))  # the legend below
