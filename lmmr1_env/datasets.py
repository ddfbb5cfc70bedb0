"""Reading user datasets (LMM-R1's message-format JSONL, plain problem/answer rows) and the split rule.

Every error names the user's thing: ``record 17 of train.jsonl: no 'answer' field``.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

#: Share of problem texts that the hash split sends to "test".
TEST_FRACTION = 0.1
_SPLIT_ALIASES = {"train": "train", "training": "train", "test": "test", "val": "test", "validation": "test",
                  "valid": "test", "dev": "test", "eval": "test"}


class DatasetError(ValueError):
    """A dataset row or file that cannot be used, with the record it concerns in the message."""


def builtin_data(*parts: str) -> Path:
    """Path of a file shipped in ``envs/`` (installed as the package ``lmmr1_env.data``)."""
    return Path(str(resources.files("lmmr1_env.data").joinpath(*parts)))


def split_of_text(text: str) -> str:
    """The fixed hash split of a problem text: ``"test"`` for about TEST_FRACTION of texts, else ``"train"``."""
    digest = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    return "test" if digest % 1000 < TEST_FRACTION * 1000 else "train"


def read_text(path: Path, error: type[ValueError] = DatasetError) -> str:
    """A text file's contents as UTF-8 (a leading byte-order mark dropped); a byte that is not UTF-8 raises
    ``error`` naming the file and its line: ``line 3 of train.jsonl: not UTF-8 text (byte 0xe9 at column 12)``."""
    data = path.read_bytes()
    data = data.removeprefix(codecs.BOM_UTF8)  # then the error's offsets count from the text's first byte
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"line {line} of {path.name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at column "
                    f"{exc.start - line_start + 1}); save the file as UTF-8") from None


def _json_list(text: str, name: str) -> list[tuple[str, Any]]:
    """The records of a ``.json`` file holding one list, parsed one by one so an error names its record."""
    decoder = json.JSONDecoder()
    index = _skip_space(text, 0)
    if not text.startswith("[", index):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{name} is not valid JSON: {exc}") from None
        except RecursionError:
            raise DatasetError(f"{name}: JSON nested too deeply to read") from None
        raise DatasetError(f"{name} must hold a JSON list of records, got {type(value).__name__}")
    records: list[tuple[str, Any]] = []
    index = _skip_space(text, index + 1)
    if text.startswith("]", index):
        index += 1
    else:
        while True:
            where = f"record {len(records) + 1} of {name}"
            try:
                row, index = decoder.raw_decode(text, index)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where} (line {exc.lineno}) is not valid JSON: {exc.msg}") from None
            except RecursionError:
                raise DatasetError(f"{where}: JSON nested too deeply (past Python's recursion limit)") from None
            records.append((where, row))
            index = _skip_space(text, index)
            if text.startswith(",", index):
                index = _skip_space(text, index + 1)
            elif text.startswith("]", index):
                index += 1
                break
            else:
                raise DatasetError(f"{name} is not valid JSON: expected ',' or ']' after {where} "
                                   f"(line {text.count(chr(10), 0, index) + 1})")
    if text[index:].strip():
        raise DatasetError(f"{name} is not valid JSON: extra data after the list "
                           f"(line {text.count(chr(10), 0, index) + 1})")
    return records


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\n\r":
        index += 1
    return index


def read_records(source: str | Path | Sequence[dict]) -> tuple[list[tuple[str, dict]], Path | None]:
    """Rows of a ``.jsonl`` / ``.json`` file or an in-memory list, each with where it came from.

    Returns ``([(where, row), ...], file_path_or_None)``; ``where`` reads "record 3 of data.jsonl". Files are
    UTF-8, a byte-order mark allowed; bytes that are not UTF-8, broken JSON and rows nested past Python's
    recursion limit are DatasetErrors naming the line or record.
    """
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise DatasetError(f"dataset file {str(source)!r} not found")
        text = read_text(path)
        name = path.name
        if path.suffix == ".json":
            records = _json_list(text, name)
        else:
            records = []
            for lineno, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    records.append((f"record {lineno} of {name}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"line {lineno} of {name} is not valid JSON: {exc.msg}") from None
                except RecursionError:
                    raise DatasetError(f"record {lineno} of {name}: JSON nested too deeply (past Python's "
                                       "recursion limit)") from None
        base = path
    elif isinstance(source, Iterable):
        records = [(f"record {i + 1} of the dataset list", row) for i, row in enumerate(source)]
        base = None
    else:
        raise TypeError(f"dataset must be a path or a list of dicts, got {type(source).__name__}")
    for where, row in records:
        if not isinstance(row, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if not records:
        raise DatasetError(f"dataset {source if base else 'list'} has no records")
    return records, base


def row_split(row: dict, where: str) -> str | None:
    """The row's own ``split`` field, normalised to train/test, or None when it has none."""
    if "split" not in row or row["split"] is None:
        return None
    value = str(row["split"]).strip().lower()
    if value not in _SPLIT_ALIASES:
        raise DatasetError(f"{where}: split {row['split']!r} is not one of {sorted(_SPLIT_ALIASES)}")
    return _SPLIT_ALIASES[value]


def rows_for_split(records: list[tuple[str, dict]], split: str, source: str,
                   task_row: Callable[[dict, str], dict[str, Any]], hash_split: bool = False) -> list[dict[str, Any]]:
    """``task_row(record, where)`` of each record that belongs to ``split``; a DatasetError if none does.

    When records carry ``split`` every one must, and only ``split``'s are kept; otherwise, with ``hash_split``,
    a row's split is the hash split of its ``problem`` text, else the dataset is used whole. ``source``
    names the dataset in the error.
    """
    rows, splits = [], []
    for where, record in records:
        rows.append(task_row(record, where))
        splits.append(row_split(record, where))
    if any(s is not None for s in splits):
        if any(s is None for s in splits):
            missing = next(where for (where, _), s in zip(records, splits) if s is None)
            raise DatasetError(f"{missing}: no 'split' field, but other records of this dataset have one")
        rows = [row for row, s in zip(rows, splits) if s == split]
    elif hash_split:
        rows = [row for row in rows if split_of_text(row["problem"]) == split]
    if not rows:
        raise DatasetError(f"dataset {source} has no records for split {split!r}")
    return rows


def plain_problem(row: dict, where: str) -> str:
    """The problem text of a plain (not message-format) row: its ``problem`` or ``question`` string."""
    problem = row.get("problem", row.get("question"))
    if problem is None:
        raise DatasetError(f"{where}: no 'problem' (or 'question', or LMM-R1 'message') field")
    if not isinstance(problem, str):
        raise DatasetError(f"{where}: 'problem' must be a string, got {type(problem).__name__}")
    return problem


def task_row(record: dict, where: str, problem: str, source: str, system_prompt: str | None,
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A task row ``{"id", "problem", "answer", **extra, "source"[, "system_prompt"]}`` of ``record``."""
    row = {"id": str(record.get("id", where)), "problem": problem, "answer": gold_answer(record, where),
           **(extra or {}), "source": source}
    if system_prompt:
        row["system_prompt"] = system_prompt
    return row


def gold_answer(row: dict, where: str) -> str:
    """The row's ``answer`` as a string (numbers allowed), or a DatasetError."""
    if "answer" not in row:
        raise DatasetError(f"{where}: no 'answer' field")
    answer = row["answer"]
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise DatasetError(f"{where}: 'answer' must be a string or a number, got {type(answer).__name__}")
    answer = str(answer).strip()
    if not answer:
        raise DatasetError(f"{where}: 'answer' is empty")
    return answer


def chat_of_row(row: dict, where: str) -> tuple[str | None, list[dict]] | None:
    """``(system_text, user_content_parts)`` of a message-format row, or None for a plain row.

    LMM-R1 stores the chat as a JSON *string* in ``message``; a real list (or ``messages``) works too.
    The row must hold exactly one user message; its content becomes a list of parts.
    """
    key = "message" if "message" in row else "messages" if "messages" in row else None
    if key is None:
        return None
    chat: Any = row[key]
    if isinstance(chat, str):
        try:
            chat = json.loads(chat)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: '{key}' is a string but not a JSON chat list ({exc.msg})") from None
        except RecursionError:
            raise DatasetError(f"{where}: '{key}' is nested too deeply (past Python's recursion limit)") from None
    if isinstance(chat, dict):
        chat = [chat]
    if not isinstance(chat, list) or not all(isinstance(m, dict) and "role" in m for m in chat):
        raise DatasetError(f"{where}: '{key}' must be a list of {{'role', 'content'}} messages")
    system = [m for m in chat if m["role"] == "system"]
    users = [m for m in chat if m["role"] == "user"]
    others = [m["role"] for m in chat if m["role"] not in ("system", "user")]
    if others:
        raise DatasetError(f"{where}: '{key}' has {others[0]!r} messages; a task row holds the prompt only")
    if len(users) != 1:
        raise DatasetError(f"{where}: '{key}' must hold exactly one user message, found {len(users)}")
    system_text = _content_parts(system[0].get("content", ""), where) if system else None
    if system_text is not None:
        system_text = "\n".join(p["text"] for p in system_text if p.get("type") == "text")
    return system_text, _content_parts(users[0].get("content", ""), where)


def _content_parts(content: Any, where: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise DatasetError(f"{where}: message content must be a string or a list of parts")
    parts = []
    for part in content:
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        if not isinstance(part, dict) or "type" not in part:
            raise DatasetError(f"{where}: a content part must be an object with a 'type', got {part!r:.80}")
        parts.append(part)
    return parts

