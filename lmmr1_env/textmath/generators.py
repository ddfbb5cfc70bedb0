"""Procedural text math problems with exact answers, at difficulty 1 (easiest) to 5.

Each family maps ``(rng, difficulty)`` to ``{"problem": str, "answer": str}`` (``arithmetic`` adds a worked
``"solution"``, one step per operation) with the answer in
LaTeX (an integer, a decimal that is exact, or ``\\frac{p}{q}`` in lowest terms). Pure functions of
their arguments: the env derives ``rng`` from (split, seed), so a seed gives the same problem anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from lmmr1_env.types import TaskRow

DIFFICULTIES = (1, 2, 3, 4, 5)


def _int(rng: np.random.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high]."""
    return int(rng.integers(low, high + 1))


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def latex_number(value: Fraction | int) -> str:
    """An exact number in LaTeX: ``12``, ``-2.5`` (only when the decimal is exact) or ``\\frac{3}{7}``."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    twos = fives = 0
    d = value.denominator
    while d % 2 == 0:
        d, twos = d // 2, twos + 1
    while d % 5 == 0:
        d, fives = d // 5, fives + 1
    if d == 1 and value.denominator <= 1000:  # a short exact decimal: max(twos, fives) places
        places = max(twos, fives)
        scaled = abs(value.numerator) * 10**places // value.denominator
        whole, frac = divmod(scaled, 10**places)
        return f"{'-' if value < 0 else ''}{whole}.{frac:0{places}d}".rstrip("0").rstrip(".")
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def _frac_text(value: Fraction, latex: bool) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}" if latex else f"{value.numerator}/{value.denominator}"


# ---- families ----


def _shown(v: int) -> str:
    """An intermediate value in a worked solution: negatives in parentheses."""
    return f"({v})" if v < 0 else str(v)


def arithmetic(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Integer expressions with the order of operations. Rows carry a worked ``solution`` (one step per
    operation, in the order of operations), what the alignment's text rehearsal teaches inside ``<think>``."""
    if difficulty <= 2:
        top = 20 if difficulty == 1 else 99
        low = 1 if difficulty == 1 else 10
        a, b = _int(rng, low, top), _int(rng, low, top)
        if rng.random() < 0.5:
            expr, value = f"{a} + {b}", a + b
        else:
            a, b = max(a, b), min(a, b)
            expr, value = f"{a} - {b}", a - b
        steps = [f"{expr} = {value}"]
    elif difficulty == 3:
        a, b, c = _int(rng, 2, 30), _int(rng, 2, 12), _int(rng, 2, 12)
        if rng.random() < 0.5:
            expr, value = f"{a} + {b} × {c}", a + b * c
            steps = [f"{b} × {c} = {b * c}", f"{a} + {b * c} = {value}"]
        else:
            expr, value = f"{b} × {c} - {a}", b * c - a
            steps = [f"{b} × {c} = {b * c}", f"{b * c} - {a} = {value}"]
    elif difficulty == 4:
        a, b, c, e = _int(rng, 5, 40), _int(rng, 1, 20), _int(rng, 2, 9), _int(rng, 2, 9)
        d = e * _int(rng, 2, 12)
        expr, value = f"({a} - {b}) × {c} + {d} ÷ {e}", (a - b) * c + d // e
        steps = [f"{a} - {b} = {a - b}", f"{_shown(a - b)} × {c} = {(a - b) * c}", f"{d} ÷ {e} = {d // e}",
                 f"{_shown((a - b) * c)} + {d // e} = {value}"]
    else:
        a, b, c, d, f = _int(rng, 2, 12), _int(rng, 2, 9), _int(rng, 1, 15), _int(rng, 1, 15), _int(rng, 2, 8)
        e = f * _int(rng, -9, 9)
        shown_e = f"({e})" if e < 0 else str(e)
        expr, value = f"{a}^2 - {b} × ({c} - {d}) + {shown_e} ÷ {f}", a * a - b * (c - d) + e // f
        product = b * (c - d)
        steps = [f"{a}^2 = {a * a}", f"{c} - {d} = {c - d}", f"{b} × {_shown(c - d)} = {product}",
                 f"{shown_e} ÷ {f} = {e // f}", f"{a * a} - {_shown(product)} + {_shown(e // f)} = {value}"]
    return {"problem": f"Calculate: {expr}", "answer": latex_number(value), "solution": ", ".join(steps)}


def fractions(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Sums, differences, products and quotients of fractions; the answer in lowest terms."""
    latex = difficulty >= 3

    def frac(max_den: int) -> Fraction:
        while True:  # a proper or improper fraction, never a whole number
            den = _int(rng, 2, max_den)
            value = Fraction(_int(rng, 1, den - 1) if rng.random() < 0.8 else _int(rng, den + 1, 2 * den - 1), den)
            if value.denominator > 1:
                return value

    def show(x: Fraction) -> str:
        return _frac_text(x, latex)

    if difficulty == 1:
        den = _int(rng, 3, 12)
        p, q = _int(rng, 1, den - 1), _int(rng, 1, den - 1)
        text, value = f"{p}/{den} + {q}/{den}", Fraction(p + q, den)
    elif difficulty == 2:
        x, y = frac(9), frac(9)
        text, value = f"{show(x)} + {show(y)}", x + y
    elif difficulty == 3:
        x, y = frac(12), frac(12)
        op = _pick(rng, ["-", "×"])
        text, value = f"{show(x)} {op} {show(y)}", (x - y if op == "-" else x * y)
    elif difficulty == 4:
        x, y, z = frac(9), frac(9), frac(9)
        text, value = f"\\left({show(x)} + {show(y)}\\right) \\times {show(z)}", (x + y) * z
    else:
        x, y, z = frac(12), frac(12), frac(12)
        while y == z:
            z = frac(12)
        text, value = f"{show(x)} \\div \\left({show(y)} - {show(z)}\\right)", x / (y - z)
    shown = f"${text}$" if latex else text
    sign = "-" if value < 0 else ""
    return {"problem": f"Compute {shown}. Give the answer as a fraction in lowest terms.",
            "answer": sign + _frac_text(abs(value), latex=True)}


def linear_equations(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Solve a linear equation (or, at difficulty 5, a 2×2 system) for x."""
    x = _int(rng, -12, 12) if difficulty >= 3 else _int(rng, 1, 15)
    if difficulty == 1:
        a = _int(rng, 1, 30)
        eq, value = f"x + {a} = {x + a}", Fraction(x)
    elif difficulty == 2:
        a, b = _int(rng, 2, 9), _int(rng, 1, 30)
        eq, value = f"{a}x + {b} = {a * x + b}", Fraction(x)
    elif difficulty == 3:
        a, c = _int(rng, 2, 9), _int(rng, 2, 9)
        while c == a:
            c = _int(rng, 2, 9)
        b = _int(rng, -20, 20)
        d = a * x + b - c * x
        eq, value = f"{a}x {_signed(b)} = {c}x {_signed(d)}", Fraction(x)
    elif difficulty == 4:
        a, b, c = _int(rng, 2, 9), _int(rng, -9, 9), _int(rng, 1, 12)
        while c == a:
            c = _int(rng, 1, 12)
        d = _int(rng, -30, 30)
        value = Fraction(d - a * b, a - c)  # a(x + b) = cx + d
        eq = f"{a}(x {_signed(b)}) = {c}x {_signed(d)}"
    else:
        y = _int(rng, -9, 9)
        while True:
            a, b, c, d = (_int(rng, -6, 6) for _ in range(4))
            if a * d - b * c != 0 and 0 not in (a, b, c, d):
                break
        eq = f"{a}x {_signed(b)}y = {a * x + b * y} and {c}x {_signed(d)}y = {c * x + d * y}"
        value = Fraction(x)
    return {"problem": f"Solve for x: {eq}.", "answer": latex_number(value)}


def _signed(v: int, var: str = "") -> str:
    return f"+ {v}{var}" if v >= 0 else f"- {-v}{var}"


def percentages(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Percent of a number, percent change, what percent one number is of another."""
    if difficulty == 1:
        p = _pick(rng, [10, 20, 25, 50, 75])
        n = 20 * _int(rng, 1, 10)
        return {"problem": f"What is {p}% of {n}?", "answer": latex_number(Fraction(p * n, 100))}
    if difficulty == 2:
        p, n = 5 * _int(rng, 1, 19), 20 * _int(rng, 1, 25)
        return {"problem": f"What is {p}% of {n}?", "answer": latex_number(Fraction(p * n, 100))}
    if difficulty == 3:
        price, p = 4 * _int(rng, 5, 50), _int(rng, 1, 40)
        up = rng.random() < 0.5
        word = "rises" if up else "falls"
        value = Fraction(price * (100 + p if up else 100 - p), 100)
        return {"problem": f"A price of ${price} {word} by {p}%. What is the new price in dollars?",
                "answer": latex_number(value)}
    if difficulty == 4:
        whole = _pick(rng, [8, 16, 20, 25, 40, 50, 80, 125, 200, 250])
        part = _int(rng, 1, 2 * whole)
        return {"problem": f"{part} is what percent of {whole}?", "answer": latex_number(Fraction(100 * part, whole))}
    p, q = 5 * _int(rng, 1, 10), 5 * _int(rng, 1, 10)
    value = Fraction((100 + p) * (100 - q), 100) - 100
    return {"problem": f"A price increases by {p}% and then decreases by {q}%. By what percent does it change "
                       "overall? Give a negative number for a decrease.", "answer": latex_number(value)}


def number_theory(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Remainders, gcd, lcm, modular powers, divisor counts, simultaneous congruences."""
    if difficulty == 1:
        a, b = _int(rng, 10, 100), _int(rng, 2, 9)
        return {"problem": f"What is the remainder when {a} is divided by {b}?", "answer": str(a % b)}
    if difficulty == 2:
        g = _int(rng, 2, 12)
        a, b = g * _int(rng, 1, 9), g * _int(rng, 1, 9)
        return {"problem": f"What is the greatest common divisor of {a} and {b}?", "answer": str(math.gcd(a, b))}
    if difficulty == 3:
        a, b = _int(rng, 4, 40), _int(rng, 4, 40)
        return {"problem": f"What is the least common multiple of {a} and {b}?", "answer": str(math.lcm(a, b))}
    if difficulty == 4:
        if rng.random() < 0.5:
            a, k, m = _int(rng, 2, 20), _int(rng, 3, 12), _int(rng, 5, 13)
            return {"problem": f"What is the remainder when ${a}^{{{k}}}$ is divided by {m}?",
                    "answer": str(pow(a, k, m))}
        n = _int(rng, 12, 500)
        count = sum(1 for d in range(1, n + 1) if n % d == 0)
        return {"problem": f"How many positive divisors does {n} have?", "answer": str(count)}
    m1, m2 = _pick(rng, [(3, 5), (4, 7), (5, 7), (3, 8), (7, 9), (5, 9), (4, 9), (8, 11)])
    r1, r2 = _int(rng, 0, m1 - 1), _int(rng, 0, m2 - 1)
    low = _int(rng, 10, 200)
    n = low + 1
    while n % m1 != r1 or n % m2 != r2:
        n += 1
    return {"problem": f"What is the smallest integer greater than {low} that leaves remainder {r1} when divided "
                       f"by {m1} and remainder {r2} when divided by {m2}?", "answer": str(n)}


_NAMES = ("Mia", "Liam", "Ava", "Noah", "Zoe", "Omar", "Lena", "Ravi", "Sofia", "Kenji", "Amara", "Tom")
_ITEMS = ("apples", "pencils", "stickers", "marbles", "books", "cookies", "stamps", "shells")


def word_problems(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Short stories with one exact numeric answer."""
    name, item = _pick(rng, _NAMES), _pick(rng, _ITEMS)
    if difficulty == 1:
        a, b = _int(rng, 2, 20), _int(rng, 2, 20)
        return {"problem": f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?",
                "answer": str(a + b)}
    if difficulty == 2:
        boxes, per = _int(rng, 2, 9), _int(rng, 3, 12)
        total = boxes * per + _int(rng, 1, 40)
        return {"problem": f"A shop has {total} {item}. It sells {boxes} boxes with {per} {item} in each box. "
                           f"How many {item} are left?", "answer": str(total - boxes * per)}
    if difficulty == 3:
        v1, t1, v2, t2 = 5 * _int(rng, 6, 20), _int(rng, 1, 5), 5 * _int(rng, 6, 20), _int(rng, 1, 5)
        return {"problem": f"A car drives at {v1} km/h for {_hours(t1)} and then at {v2} km/h for {_hours(t2)}. "
                           "How many kilometres does it drive in total?", "answer": str(v1 * t1 + v2 * t2)}
    if difficulty == 4:
        adult, child = _int(rng, 8, 20), _int(rng, 3, 9)
        na, nc = _int(rng, 2, 4), _int(rng, 2, 6)
        paid = 50 * math.ceil((adult * na + child * nc + 1) / 50)
        return {"problem": f"Tickets cost ${adult} for an adult and ${child} for a child. {name} buys tickets for "
                           f"{na} adults and {nc} children and pays with ${paid}. How many dollars of change "
                           f"does {name} get?", "answer": str(paid - adult * na - child * nc)}
    # ages: A = k·B now, A + t = m·(B + t) later  =>  B = t(m − 1) / (k − m)
    while True:
        k, m, t = _int(rng, 3, 6), _int(rng, 2, 4), _int(rng, 2, 12)
        if k > m and (t * (m - 1)) % (k - m) == 0:
            break
    b = t * (m - 1) // (k - m)
    other = _pick(rng, [n for n in _NAMES if n != name])
    times = {2: "twice", 3: "three times", 4: "four times"}[m]
    return {"problem": f"{name} is {k} times as old as {other}. In {t} years, {name} will be {times} as old as "
                       f"{other}. How old is {name} now?", "answer": str(k * b)}


def sequences(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Arithmetic and geometric sequences: a later term or a sum."""
    if difficulty <= 2:
        a, d = _int(rng, 1, 20), _int(rng, 2, 9) * (1 if difficulty == 1 else _pick(rng, [1, -1]))
        terms = ", ".join(str(a + i * d) for i in range(4))
        return {"problem": f"What is the next number in the sequence {terms}, ...?", "answer": str(a + 4 * d)}
    if difficulty == 3:
        a, d, n = _int(rng, -20, 20), _int(rng, -9, 9) or 3, _int(rng, 10, 60)
        terms = ", ".join(str(a + i * d) for i in range(3))
        return {"problem": f"The arithmetic sequence {terms}, ... continues. What is its {_ordinal(n)} term?",
                "answer": str(a + (n - 1) * d)}
    if difficulty == 4:
        a, r, n = _int(rng, 1, 5), _int(rng, 2, 4), _int(rng, 5, 8)
        terms = ", ".join(str(a * r**i) for i in range(3))
        return {"problem": f"The geometric sequence {terms}, ... continues. What is its {_ordinal(n)} term?",
                "answer": str(a * r ** (n - 1))}
    a, d, n = _int(rng, -10, 30), _int(rng, -5, 12) or 2, _int(rng, 10, 40)
    terms = ", ".join(str(a + i * d) for i in range(3))
    return {"problem": f"What is the sum of the first {n} terms of the arithmetic sequence {terms}, ...?",
            "answer": str(n * (2 * a + (n - 1) * d) // 2)}


def _hours(n: int) -> str:
    return f"{n} hour" if n == 1 else f"{n} hours"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


#: Every procedural family by name.
FAMILIES: dict[str, Callable[[np.random.Generator, int], TaskRow]] = {
    "arithmetic": arithmetic,
    "fractions": fractions,
    "linear_equations": linear_equations,
    "percentages": percentages,
    "number_theory": number_theory,
    "word_problems": word_problems,
    "sequences": sequences,
}
