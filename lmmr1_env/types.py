"""Type aliases shared across lmmr1_env (and the agents that read its observations)."""

from __future__ import annotations

from typing import Any

import numpy as np

#: An observation: ``{"text": str}``, plus ``"image": (H, W, 3) uint8`` for multimodal envs.
Observation = dict[str, Any]
#: An OpenAI-style chat message: ``{"role": ..., "content": str | list[part]}``.
Message = dict[str, Any]
#: A JSON-able task row (problem, gold answer, provenance) as a generator or loader yields it.
TaskRow = dict[str, Any]
Image = np.ndarray
