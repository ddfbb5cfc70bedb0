"""A fixed prompt and figure whose output pins the shipped aligned VLM: rebuilt anywhere, it must match.

``reference.json`` beside the shipped weights holds the greedy response's token ids and the top next-token
logits for the env's prompt of a fixed held-out clock figure; ``tests/test_align.py`` rebuilds the VLM
from the shipped weights and compares.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

REFERENCE_FILE = "reference.json"
#: The env's test-split problem the reference shows (family, seed, difficulty, image side).
REFERENCE_TASK = {"family": "clock", "seed": 0, "difficulty": 1, "image_size": 112}
TOP_K = 5
NEW_TOKENS = 24


def reference_output(model_folder: str | Path) -> dict:
    """Greedy response ids and the top-5 first-token logits of ``model_folder`` on the reference prompt."""
    from lmmr1_agent.agents.hf import HFAgent
    from lmmr1_agent.align.phases import conversation
    from lmmr1_env.visualmath.env import generate_task, render_task

    spec = REFERENCE_TASK
    task = generate_task("test", spec["seed"], [spec["family"]], [spec["difficulty"]])
    image = render_task(task, (spec["image_size"], spec["image_size"]))
    agent = HFAgent(str(model_folder), max_new_tokens=NEW_TOKENS)
    chat = conversation(task, image)
    response = agent.act([chat], [{}])[0]
    with torch.no_grad():
        inputs = agent.adapter.prepare([chat])
        logits = agent.model(**inputs).logits[0, -1]
    top = torch.topk(logits, TOP_K)
    return {"task": spec, "response_ids": response.token_ids, "response": response.text,
            "top_ids": top.indices.tolist(), "top_logits": [round(v, 4) for v in top.values.tolist()]}


def write_reference(model_folder: str | Path, folder: Path) -> Path:
    """Record :func:`reference_output` of ``model_folder`` as ``folder/reference.json``."""
    path = folder / REFERENCE_FILE
    path.write_text(json.dumps(reference_output(model_folder), indent=2) + "\n", encoding="utf-8")
    return path
