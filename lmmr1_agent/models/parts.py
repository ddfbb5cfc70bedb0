"""Where a vision-language model keeps its vision side, whatever its family calls it, so ``freeze_prefix`` can say
``vision_tower`` and ``projector`` and mean the same parts of Qwen2.5-VL, Gemma 3, Idefics3 or our FastVLM."""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: The ``freeze_prefix`` words that name a part instead of spelling its parameter prefix.
ALIASES = ("vision_tower", "projector")
#: Module names of vision towers (Qwen: ``visual``; LLaVA, Gemma 3, FastVLM: ``vision_tower``; Idefics3, SmolVLM:
#: ``vision_model``) and of projectors (LLaVA, Gemma 3, FastVLM: ``multi_modal_projector``; Idefics3: ``connector``;
#: Qwen: ``merger``, inside its tower).
_TOWERS = ("visual", "vision_tower", "vision_model")
_PROJECTORS = ("multi_modal_projector", "connector", "merger", "mm_projector")


def _outermost(model: torch.nn.Module, names: Sequence[str]) -> list[str]:
    found = [n for n, _ in model.named_modules() if n.rsplit(".", 1)[-1] in names]
    return [n + "." for n in found if not any(n != o and n.startswith(o + ".") for o in found)]


def vision_parts(model: torch.nn.Module) -> dict[str, list[str]]:
    """``{"vision_tower": [...], "projector": [...]}``: the parameter-name prefixes of each part (empty lists for a
    text model)."""
    return {"vision_tower": _outermost(model, _TOWERS), "projector": _outermost(model, _PROJECTORS)}


def frozen_prefixes(model: torch.nn.Module, entries: Sequence[str]) -> tuple[str, ...]:
    """The parameter-name prefixes ``entries`` mean for ``model``: an alias (:data:`ALIASES`) becomes its part's
    prefixes, anything else is a prefix as written. A ValueError for an alias the model has no part for, or a
    prefix no parameter has (a config written for another family would otherwise freeze nothing, silently)."""
    parts = vision_parts(model) if any(e in ALIASES for e in entries) else {}
    names = [n for n, _ in model.named_parameters()]
    out: list[str] = []
    for entry in entries:
        if entry in ALIASES:
            if not parts[entry]:
                raise ValueError(f"freeze_prefix {entry!r}: {type(model).__name__} has no {entry.replace('_', ' ')}")
            out.extend(parts[entry])
        elif any(n.startswith(entry) for n in names):
            out.append(entry)
        else:
            towers = vision_parts(model)["vision_tower"]
            hint = f" (its vision tower is {towers[0]!r}; or write vision_tower / projector)" if towers else ""
            raise ValueError(f"freeze_prefix {entry!r} matches no parameter of {type(model).__name__}{hint}")
    return tuple(p for p in dict.fromkeys(out) if not any(p != q and p.startswith(q) for q in out))
