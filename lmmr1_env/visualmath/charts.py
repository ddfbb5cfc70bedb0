"""Data families: read and compute from a bar chart, a line chart, and a small table."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from lmmr1_env.types import TaskRow
from lmmr1_env.visualmath.drawing import BAR, GRID, INK, WHITE, Canvas
from lmmr1_env.visualmath.family import Family, choice, integer, latex_number, multiple_choice, pick, plain

_PLOT = (78.0, 78.0, 420.0, 352.0)  # left, top, right, bottom of the plotting area, design units
_TICK_STEPS = (1, 2, 5, 10)

# Each theme: title, categories, and question templates ({a}, {b} are category names).
_BAR_THEMES = (
    {"title": "Books read this month", "cats": ("Ana", "Ben", "Cleo", "Dev", "Eli", "Finn", "Gus"),
     "value": "How many books did {a} read?", "more": "How many more books did {a} read than {b}?",
     "total": "How many books did they read altogether?", "most": "Who read the most books?",
     "fewest": "Who read the fewest books?", "mean": "What is the mean number of books read per person?",
     "max_value": 30},
    {"title": "Fruit sold (kg)", "cats": ("Apples", "Pears", "Plums", "Kiwis", "Limes", "Figs", "Dates"),
     "value": "How many kilograms of {a} were sold?",
     "more": "How many more kilograms of {a} than of {b} were sold?",
     "total": "How many kilograms of fruit were sold in all?", "most": "Which fruit sold the most kilograms?",
     "fewest": "Which fruit sold the fewest kilograms?",
     "mean": "What is the mean mass sold per kind of fruit, in kilograms?", "lower": True},
    {"title": "Rainy days per month", "cats": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul"),
     "value": "How many rainy days were there in {a}?",
     "more": "How many more rainy days were there in {a} than in {b}?",
     "total": "How many rainy days were there in these months altogether?",
     "most": "Which month had the most rainy days?", "fewest": "Which month had the fewest rainy days?",
     "mean": "What is the mean number of rainy days per month?", "ordered": True, "max_value": 30},
)
_LINE_THEMES = (
    {"title": "Members of the chess club", "value": "How many members did the club have in {a}?",
     "more": "How many more members did the club have in {a} than in {b}?",
     "rise": "Between which two consecutive years did the number of members rise the most?",
     "mean": "What is the mean number of members over the years shown?"},
    {"title": "Trees planted in the park", "value": "How many trees were planted in {a}?",
     "more": "How many more trees were planted in {a} than in {b}?",
     "rise": "Between which two consecutive years did the number of trees planted rise the most?",
     "mean": "What is the mean number of trees planted per year over the years shown?"},
    {"title": "Bicycles sold by a shop", "value": "How many bicycles were sold in {a}?",
     "more": "How many more bicycles were sold in {a} than in {b}?",
     "rise": "Between which two consecutive years did bicycle sales rise the most?",
     "mean": "What is the mean number of bicycles sold per year over the years shown?"},
)


def _scale(rng: np.random.Generator, difficulty: int, most: int = 100, levels: int = 8) -> tuple[int, int, int]:
    """(tick step, number of ticks, value step): values are multiples of the value step up to step × ticks,
    which stays at or below ``most`` and leaves at least ``levels`` possible values (so n bars can differ)."""
    steps = [s for s in (_TICK_STEPS[:3] if difficulty <= 2 else _TICK_STEPS) if 5 * s <= most]
    while True:
        step = pick(rng, steps)
        ticks = integer(rng, 5, min(8, most // step))
        unit = step // 2 if difficulty >= 4 and step in (2, 10) else step
        if step * ticks // unit >= levels:
            return step, ticks, unit


def _values(rng: np.random.Generator, n: int, step: int, ticks: int, unit: int, distinct: bool) -> list[int]:
    top = step * ticks // unit
    while True:
        values = [unit * integer(rng, 1, top) for _ in range(n)]
        if not distinct or len(set(values)) == n:
            return values


def draw_bar_chart(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Bar chart reading: a labelled value (1), a value off the grid (2), a difference (3),
    a total or the largest / smallest category (4, A–D), the mean (5)."""
    theme = pick(rng, _BAR_THEMES)
    n = integer(rng, 4, 5) if difficulty in (1, 5) else integer(rng, 4, 6)
    step, ticks, unit = _scale(rng, difficulty, theme.get("max_value", 100))
    if theme.get("ordered"):  # months: n consecutive ones
        start = integer(rng, 0, len(theme["cats"]) - n)
        cats = list(theme["cats"][start:start + n])
    else:
        cats = choice(rng, theme["cats"], n)
    values = _values(rng, n, step, ticks, unit, distinct=difficulty >= 3)
    i, j = (int(k) for k in rng.permutation(n)[:2])
    said = [c.lower() for c in cats] if theme.get("lower") else cats  # "kilograms of plums", chart says "Plums"
    row: TaskRow
    if difficulty <= 2:
        row = {"problem": theme["value"].format(a=said[i]), "answer": str(values[i])}
        solution = f"{cats[i]}: {values[i]}"
    elif difficulty == 3:
        hi, lo = (i, j) if values[i] > values[j] else (j, i)
        row = {"problem": theme["more"].format(a=said[hi], b=said[lo]), "answer": str(values[hi] - values[lo])}
        solution = f"{cats[hi]}: {values[hi]}, {cats[lo]}: {values[lo]}. {values[hi]} - {values[lo]} = {row['answer']}"
    elif difficulty == 4 and rng.random() < 0.4:
        row = {"problem": theme["total"], "answer": str(sum(values))}
        solution = f"{_read(cats, values)} {_sum(values)} = {row['answer']}"
    elif difficulty == 4:
        key = pick(rng, ["most", "fewest"])
        best = values.index(max(values) if key == "most" else min(values))
        row = multiple_choice(rng, theme[key], cats[best], [c for k, c in enumerate(cats) if k != best])
        solution = f"{_read(cats, values)} The {key} is {cats[best]}: {row['answer']}"
    else:
        row = {"problem": theme["mean"], "answer": latex_number(Fraction(sum(values), n))}
        solution = f"{_read(cats, values)} {_mean(values)}"
    params = {"title": theme["title"], "cats": cats, "values": values, "step": step, "ticks": ticks,
              "labels": difficulty == 1, "operands": sorted(set(values))}
    return {"problem": f"Use the bar chart. {row['problem']}", "answer": row["answer"], "params": params,
            "solution": solution}


def _read(names: list, values: list) -> str:
    """``"Jan: 4, Feb: 7."``: a chart's values by name, as read off it."""
    return ", ".join(f"{name}: {value}" for name, value in zip(names, values)) + "."


def _sum(values: list) -> str:
    return " + ".join(map(str, values))


def _mean(values: list) -> str:
    """The worked mean, ``(4 + 7) ÷ 2 = 5.5``."""
    return f"({_sum(values)}) ÷ {len(values)} = {plain(Fraction(sum(values), len(values)))}"


def _axes(canvas: Canvas, title: str, step: int, ticks: int) -> float:
    """Title, horizontal grid lines with their values, and the axes; returns design units per value unit."""
    left, top, right, bottom = _PLOT
    canvas.text(224, 36, title, 19)
    per = (bottom - top) / (step * ticks)
    for k in range(ticks + 1):
        y = bottom - k * step * per
        if k:
            canvas.line([(left, y), (right, y)], width=1, fill=GRID)
        canvas.line([(left - 5, y), (left, y)], width=1.5)
        canvas.text(left - 9, y, str(k * step), 14, anchor="rm")
    canvas.line([(left, top - 8), (left, bottom), (right, bottom)], width=2)
    return per


def render_bar_chart(params: dict, canvas: Canvas) -> None:
    """Draw the bar chart of ``params`` (see :func:`draw_bar_chart`)."""
    left, _, right, bottom = _PLOT
    per = _axes(canvas, params["title"], params["step"], params["ticks"])
    n = len(params["cats"])
    slot = (right - left) / n
    for k, (cat, value) in enumerate(zip(params["cats"], params["values"])):
        cx = left + slot * (k + 0.5)
        half = slot * 0.3
        canvas.rect(cx - half, bottom - value * per, cx + half, bottom, fill=BAR, outline=INK, width=1.5)
        canvas.text(cx, bottom + 15, cat, 14)
        if params["labels"]:
            canvas.text(cx, bottom - value * per - 11, str(value), 14)


def draw_line_chart(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Line chart over years: a labelled value (1), a value off the grid (2), a difference (3),
    the largest rise between consecutive years (4, A–D), the mean (5)."""
    theme = pick(rng, _LINE_THEMES)
    n = pick(rng, [4, 5, 8]) if difficulty == 5 else integer(rng, 5, 8)
    step, ticks, unit = _scale(rng, difficulty)
    first = integer(rng, 2010, 2018)
    years = [first + k for k in range(n)]
    while True:
        values = _values(rng, n, step, ticks, unit, distinct=False)
        rises = [values[k + 1] - values[k] for k in range(n - 1)]
        if difficulty != 4 or (max(rises) > 0 and rises.count(max(rises)) == 1):
            break
    i, j = (int(k) for k in rng.permutation(n)[:2])
    if difficulty <= 2:
        problem, answer = theme["value"].format(a=years[i]), str(values[i])
        solution = f"{years[i]}: {values[i]}"
    elif difficulty == 3:
        while values[i] == values[j]:
            i, j = (int(k) for k in rng.permutation(n)[:2])
        hi, lo = (i, j) if values[i] > values[j] else (j, i)
        problem, answer = theme["more"].format(a=years[hi], b=years[lo]), str(values[hi] - values[lo])
        solution = f"{years[hi]}: {values[hi]}, {years[lo]}: {values[lo]}. {values[hi]} - {values[lo]} = {answer}"
    elif difficulty == 4:
        spans = [f"{years[k]} to {years[k + 1]}" for k in range(n - 1)]
        best = rises.index(max(rises))
        row = multiple_choice(rng, theme["rise"], spans[best], choice(rng, [s for s in spans if s != spans[best]],
                                                                      3))
        problem, answer = row["problem"], row["answer"]
        solution = (f"{_read(years, values)} The largest rise is {spans[best]}: "
                    f"{values[best + 1]} - {values[best]} = {rises[best]}. So {answer}")
    else:
        problem, answer = theme["mean"], latex_number(Fraction(sum(values), n))
        solution = f"{_read(years, values)} {_mean(values)}"
    params = {"title": theme["title"], "years": years, "values": values, "step": step, "ticks": ticks,
              "labels": difficulty == 1, "operands": sorted(set(values))}
    return {"problem": f"Use the line chart. {problem}", "answer": answer, "params": params, "solution": solution}


def render_line_chart(params: dict, canvas: Canvas) -> None:
    """Draw the line chart of ``params`` (see :func:`draw_line_chart`)."""
    left, _, right, bottom = _PLOT
    per = _axes(canvas, params["title"], params["step"], params["ticks"])
    n = len(params["years"])
    slot = (right - left) / n
    points = [(left + slot * (k + 0.5), bottom - v * per) for k, v in enumerate(params["values"])]
    canvas.line(points, width=2.5, fill=BAR)
    for (x, y), year, value in zip(points, params["years"], params["values"]):
        canvas.line([(x, bottom), (x, bottom + 5)], width=1.5)
        canvas.text(x, bottom + 16, str(year), 13)
        canvas.circle(x, y, 5, fill=INK, outline=None)
        if params["labels"]:
            canvas.text(x, y - 15, str(value), 14, background=WHITE)


#: Table row name -> (one, several) as a question says them.
_ITEMS = {"Pencil": ("pencil", "pencils"), "Notebook": ("notebook", "notebooks"), "Ruler": ("ruler", "rulers"),
          "Eraser": ("eraser", "erasers"), "Marker": ("marker", "markers"), "Folder": ("folder", "folders"),
          "Stapler": ("stapler", "staplers"), "Crayons": ("box of crayons", "boxes of crayons")}


def draw_table(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """A price table from a school shop: read a cell (1), a column total (2), one item's takings (3),
    all takings (4), the item that took the most money (5, A–D)."""
    n = 3 if difficulty <= 2 else 4 if difficulty <= 4 else 5
    while True:
        items = choice(rng, list(_ITEMS), n)
        prices = [integer(rng, 1, 9 if difficulty <= 3 else 15) for _ in range(n)]
        sold = [integer(rng, 2, 20 if difficulty <= 3 else 40) for _ in range(n)]
        money = [p * s for p, s in zip(prices, sold)]
        best = money.index(max(money))
        if difficulty < 5 or (money.count(money[best]) == 1 and best != sold.index(max(sold))):
            break
    k = integer(rng, 0, n - 1)
    if difficulty == 1:
        one, several = _ITEMS[items[k]]
        if rng.random() < 0.5:
            problem, answer, operands = f"How many {several} were sold?", sold[k], [sold[k]]
            solution = f"{items[k]}: {answer} sold"
        else:
            problem, answer, operands = f"How many dollars does one {one} cost?", prices[k], [prices[k]]
            solution = f"{items[k]}: ${answer}"
        row = {"problem": problem, "answer": str(answer)}
    elif difficulty == 2:
        row, operands = {"problem": "How many items were sold altogether?", "answer": str(sum(sold))}, sold
        solution = f"Sold: {_read(items, sold)} {_sum(sold)} = {row['answer']}"
    elif difficulty == 3:
        row = {"problem": f"How many dollars did the shop take from selling {_ITEMS[items[k]][1]}?",
               "answer": str(money[k])}
        operands = [prices[k], sold[k]]
        solution = f"{items[k]}: ${prices[k]}, {sold[k]} sold. {prices[k]} × {sold[k]} = {money[k]}"
    elif difficulty == 4:
        row = {"problem": "How many dollars did the shop take in total?", "answer": str(sum(money))}
        operands = prices + sold
        solution = " + ".join(f"{p} × {s}" for p, s in zip(prices, sold)) + f" = {row['answer']}"
    else:
        row = multiple_choice(rng, "Which item took the most money?", items[best],
                              [it for i, it in enumerate(items) if i != best])
        operands = prices + sold
        takings = ", ".join(f"{it}: {p} × {s} = {m}" for it, p, s, m in zip(items, prices, sold, money))
        solution = f"{takings}. The most is {items[best]}: {row['answer']}"
    params = {"items": items, "prices": prices, "sold": sold, "operands": sorted(set(operands))}
    return {"problem": f"The table shows a school shop's sales on one day. {row['problem']}",
            "answer": row["answer"], "params": params, "solution": solution}


def render_table(params: dict, canvas: Canvas) -> None:
    """Draw the sales table of ``params`` (see :func:`draw_table`)."""
    header = ("Item", "Price ($)", "Number sold")
    widths = (150.0, 110.0, 130.0)
    rows = [header, *zip(params["items"], map(str, params["prices"]), map(str, params["sold"]))]
    height = 46.0
    x0 = 224 - sum(widths) / 2
    y0 = 224 - height * len(rows) / 2 + 14
    canvas.text(224, y0 - 30, "School shop sales", 19)
    canvas.rect(x0, y0, x0 + sum(widths), y0 + height, fill=(222, 230, 242), outline=None)
    for r, row in enumerate(rows):
        x = x0
        for c, (cell, width) in enumerate(zip(row, widths)):
            anchor_x = x + 12 if c == 0 else x + width / 2
            canvas.text(anchor_x, y0 + height * (r + 0.5), cell, 17, anchor="lm" if c == 0 else "mm")
            x += width
    right, bottom = x0 + sum(widths), y0 + height * len(rows)
    for r in range(len(rows) + 1):
        y = y0 + height * r
        canvas.line([(x0, y), (right, y)], width=2.5 if r in (0, 1, len(rows)) else 1.2)
    x = x0
    for width in (0.0, *widths):
        x += width
        canvas.line([(x, y0), (x, bottom)], width=1.2 if x0 < x < right else 2.5)


def _series(key: str):
    """A chart's reading (its values) and words (``"Jan: 4, Feb: 7."``) by the parameter naming its x axis."""
    def reading(p: dict) -> list | None:
        return list(p["values"]) if "values" in p else None

    def words(p: dict) -> str | None:
        if key not in p or "values" not in p:
            return None
        return _read(p[key], p["values"])
    return reading, words


def _table_words(p: dict) -> str | None:
    if not {"items", "prices", "sold"} <= set(p):
        return None
    rows = zip(p["items"], p["prices"], p["sold"])
    return "; ".join(f"{item}: ${price}, {sold} sold" for item, price, sold in rows) + "."


BAR_CHART = Family("bar_chart", draw_bar_chart, render_bar_chart, *_series("cats"))
LINE_CHART = Family("line_chart", draw_line_chart, render_line_chart, *_series("years"))
TABLE = Family("table", draw_table, render_table,
               lambda p: [*p["prices"], *p["sold"]] if "prices" in p and "sold" in p else None, _table_words)
