"""TextMath task rows from a user's dataset or the built-in sample: loading, validation, split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lmmr1_env.datasets import (
    DatasetError,
    builtin_data,
    chat_of_row,
    plain_problem,
    read_records,
    rows_for_split,
    task_row,
)
from lmmr1_env.types import TaskRow

#: Names of datasets shipped in envs/textmath/.
BUILTIN_DATASETS = {"sample": "sample.jsonl"}


def load_rows(dataset: str | Path | Sequence[dict], split: str) -> list[TaskRow]:
    """Task rows ``{"id", "problem", "answer", "source"[, "system_prompt"]}`` for ``split``.

    A file whose rows carry ``split`` keeps only that split's rows; a built-in dataset without one
    uses the hash split of the problem text; any other dataset is used whole.
    """
    builtin = isinstance(dataset, str) and dataset in BUILTIN_DATASETS
    records, path = read_records(builtin_data("textmath", BUILTIN_DATASETS[dataset]) if builtin else dataset)
    source = f"builtin:{dataset}" if builtin else str(path) if path else "list"
    return rows_for_split(records, split, source, lambda record, where: _task_row(record, where, source),
                          hash_split=builtin)


def _task_row(record: dict, where: str, source: str) -> TaskRow:
    chat = chat_of_row(record, where)
    system_prompt = None
    if chat is None:
        problem = plain_problem(record, where)
    else:
        system_prompt, parts = chat
        images = [p for p in parts if p["type"] in ("image", "image_url")]
        if images:
            raise DatasetError(f"{where}: the message has an image; use LMMR1/VisualMath-v0 for multimodal rows")
        problem = "\n".join(p.get("text", "") for p in parts if p["type"] == "text")
    if not problem.strip():
        raise DatasetError(f"{where}: the problem text is empty")
    return task_row(record, where, problem, source, system_prompt)
