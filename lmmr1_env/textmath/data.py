"""TextMath task rows from a user's dataset or the built-in sample: loading, validation, split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lmmr1_env.datasets import (
    DatasetError,
    builtin_data,
    chat_of_row,
    gold_answer,
    read_records,
    row_split,
    split_of_text,
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
    rows, splits = [], []
    for where, record in records:
        rows.append(_task_row(record, where, source))
        splits.append(row_split(record, where))
    if any(s is not None for s in splits):
        if any(s is None for s in splits):
            missing = next(where for (where, _), s in zip(records, splits) if s is None)
            raise DatasetError(f"{missing}: no 'split' field, but other records of this dataset have one")
        rows = [row for row, s in zip(rows, splits) if s == split]
    elif builtin:
        rows = [row for row in rows if split_of_text(row["problem"]) == split]
    if not rows:
        raise DatasetError(f"dataset {source} has no records for split {split!r}")
    return rows


def _task_row(record: dict, where: str, source: str) -> TaskRow:
    chat = chat_of_row(record, where)
    system_prompt = None
    if chat is None:
        problem = record.get("problem", record.get("question"))
        if problem is None:
            raise DatasetError(f"{where}: no 'problem' (or 'question', or LMM-R1 'message') field")
        if not isinstance(problem, str):
            raise DatasetError(f"{where}: 'problem' must be a string, got {type(problem).__name__}")
    else:
        system_prompt, parts = chat
        images = [p for p in parts if p["type"] in ("image", "image_url")]
        if images:
            raise DatasetError(f"{where}: the message has an image; use LMMR1/VisualMath-v0 for multimodal rows")
        problem = "\n".join(p.get("text", "") for p in parts if p["type"] == "text")
    if not problem.strip():
        raise DatasetError(f"{where}: the problem text is empty")
    row: TaskRow = {"id": str(record.get("id", where)), "problem": problem, "answer": gold_answer(record, where),
                    "source": source}
    if system_prompt:
        row["system_prompt"] = system_prompt
    return row
