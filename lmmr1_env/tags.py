"""Reading ``<tag>…</tag>`` spans out of model text in linear time.

``re.findall(r"<answer>(.*?)</answer>", text)`` is quadratic: from every unclosed ``<answer>`` the lazy ``.*?``
scans to the end of the text, so a response of 10 000 unclosed tags took 12–16 s to score. A collapsing policy
writes exactly such text, so every parser of model text reads tags through :func:`tag_bodies`, which finds the
same spans with ``str.find`` from ever-increasing positions: each character is looked at a bounded number of
times.
"""

from __future__ import annotations

import string

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def tag_bodies(text: str, tag: str, *, ignore_case: bool = False) -> list[str]:
    """The bodies of ``<tag>…</tag>`` pairs, left to right, exactly as ``re.findall(r"<tag>(.*?)</tag>", DOTALL)``.

    Pairs do not overlap: after ``<tag>`` the first ``</tag>`` closes it, and the search goes on after that
    closing tag (so ``<a>x<a>y</a>`` has the one body ``x<a>y``). ``ignore_case`` matches the tags in any
    ASCII case. Time and memory are linear in ``len(text)``.
    """
    opening, closing = f"<{tag}>", f"</{tag}>"
    # ASCII lower-casing keeps every index in place (str.lower can change the length of non-ASCII text).
    haystack = text.translate(_ASCII_LOWER) if ignore_case else text
    if ignore_case:
        opening, closing = opening.lower(), closing.lower()
    bodies, position = [], 0
    while True:
        start = haystack.find(opening, position)
        if start < 0:
            return bodies
        start += len(opening)
        end = haystack.find(closing, start)
        if end < 0:  # no later opening tag can be closed either
            return bodies
        bodies.append(text[start:end])
        position = end + len(closing)


def last_tag_body(text: str, tag: str, *, ignore_case: bool = False) -> str | None:
    """The body of the last ``<tag>…</tag>`` pair (as :func:`tag_bodies` pairs them), or None."""
    bodies = tag_bodies(text, tag, ignore_case=ignore_case)
    return bodies[-1] if bodies else None


def first_tag_body(text: str, tag: str) -> str | None:
    """The body of the first ``<tag>…</tag>`` pair, or None; like ``re.search(r"<tag>(.*?)</tag>", DOTALL)``."""
    opening, closing = f"<{tag}>", f"</{tag}>"
    start = text.find(opening)
    if start < 0:
        return None
    end = text.find(closing, start + len(opening))
    return None if end < 0 else text[start + len(opening):end]


#: End-of-sequence tokens a response may carry (ChatML, GPT/Qwen base, Gemma, DeepSeek), removed before judging.
EOS_TOKENS = ("<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<\uff5cend\u2581of\u2581sentence\uff5c>")


def strip_eos(response: str) -> str:
    """The response without end-of-sequence tokens (anywhere) and surrounding whitespace (LMM-R1's first step);
    every env judges what this returns."""
    for token in EOS_TOKENS:
        response = response.replace(token, "")
    return response.strip()
