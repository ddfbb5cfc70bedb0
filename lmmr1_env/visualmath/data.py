"""VisualMath task rows from a user's dataset: LMM-R1 message-format JSONL with image parts, or plain rows.

Images are local files. A path is resolved when the dataset is loaded (relative paths against the
dataset file's folder, or the working directory for an in-memory list; ``file://`` URLs too) and checked
then, so a missing, remote, non-image, truncated (a PNG's chunks are read and their checksums verified,
without decoding) or oversized file fails at ``gym.make`` with the record named. Oversized: more than
:data:`PIXEL_CAP_FACTOR` × the env's image size in pixels, read from the header, since the env would only
shrink it (a 12000 × 12000 PNG takes 8 s and 1.15 GB to decode). The pixels are decoded lazily, at the
``reset`` that shows them; a file that still fails to decode there (a truncated JPEG) names the record too.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from PIL import Image, UnidentifiedImageError

from lmmr1_env.datasets import (
    DatasetError,
    chat_of_row,
    plain_problem,
    read_records,
    rows_for_split,
    task_row,
)
from lmmr1_env.types import TaskRow

_REMOTE_SCHEMES = ("http", "https", "ftp", "s3", "gs", "hf")
#: An image may have at most this many times the pixels of the env's image_size (it is shrunk to fit anyway).
PIXEL_CAP_FACTOR = 64
_DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error, EOFError)


def check_image_size(image: Image.Image, ref: Any, where: str, image_size: tuple[int, int] | None) -> None:
    """DatasetError unless ``image`` (opened, not decoded) has at most PIXEL_CAP_FACTOR × ``image_size`` pixels."""
    if image_size is None:
        return
    cap = PIXEL_CAP_FACTOR * image_size[0] * image_size[1]
    width, height = image.size
    if width * height > cap:
        raise DatasetError(f"{where}: image {ref!r} is {width}×{height} pixels, over the cap of {cap:,} "
                           f"({PIXEL_CAP_FACTOR} × image_size {image_size[0]}×{image_size[1]}); shrink it first")


def _open(path: Path | str, ref: Any, where: str) -> Image.Image:
    """``Image.open`` (the header only), with Pillow's own bomb limit as a DatasetError; our cap is checked next."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise DatasetError(f"{where}: image {ref!r} is too large to open ({exc}); shrink it first") from None


def load_rows(dataset: str | Path | Sequence[dict], split: str,
              image_size: tuple[int, int] | None = None) -> list[TaskRow]:
    """Task rows ``{"id", "problem", "answer", "image_file", "image_ref", "where", "source"[, "system_prompt"]}``.

    A dataset whose rows carry ``split`` keeps only ``split``'s rows; any other dataset is used whole. With
    ``image_size`` (height, width), an image over PIXEL_CAP_FACTOR times its pixels is refused.
    """
    records, path = read_records(dataset)
    base_dir = path.parent if path is not None else Path.cwd()
    source = str(path) if path is not None else "list"
    return rows_for_split(records, split, source,
                          lambda record, where: _task_row(record, where, source, base_dir, image_size))


def _task_row(record: dict, where: str, source: str, base_dir: Path, image_size: tuple[int, int] | None) -> TaskRow:
    chat = chat_of_row(record, where)
    system_prompt = None
    if chat is None:
        problem = plain_problem(record, where)
        refs = record.get("image", record.get("images"))
        if refs is None:
            raise DatasetError(f"{where}: no 'image' field; use LMMR1/TextMath-v0 for text-only rows")
        refs = refs if isinstance(refs, list) else [refs]
    else:
        system_prompt, parts = chat
        refs = [_part_ref(p, where) for p in parts if p["type"] in ("image", "image_url")]
        problem = "\n".join(p.get("text", "") for p in parts if p["type"] == "text").strip()
    if not refs:
        raise DatasetError(f"{where}: the row has no image; use LMMR1/TextMath-v0 for text-only rows")
    if len(refs) > 1:
        raise DatasetError(f"{where}: the row has {len(refs)} images; VisualMath-v0 shows one image per problem")
    if not problem.strip():
        raise DatasetError(f"{where}: the problem text is empty")
    image_file = resolve_image(refs[0], base_dir, where, image_size)
    return task_row(record, where, problem, source, system_prompt,
                    {"image_file": str(image_file), "image_ref": refs[0], "where": where})


def _part_ref(part: dict, where: str) -> Any:
    """What an image part points at: ``{"type": "image", "image": REF}`` or OpenAI's ``image_url``."""
    ref = part.get("image", part.get("image_url"))
    if isinstance(ref, dict):
        ref = ref.get("url")
    if ref is None:
        raise DatasetError(f"{where}: an image part has no 'image' (or 'image_url') value")
    return ref


def resolve_image(ref: Any, base_dir: Path, where: str, image_size: tuple[int, int] | None = None) -> Path:
    """The local file an image reference names, checked to exist, to be a whole image and (with ``image_size``)
    not to be over the pixel cap; else DatasetError.

    ``ref`` is a path (relative to ``base_dir`` unless absolute) or a ``file://`` URL. Remote URLs are
    refused: the environment never reaches the network. Nothing is decoded: a PNG's chunk checksums are
    verified (about a tenth of the decoding time), other formats only have their header read.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise DatasetError(f"{where}: an image must be a file path string, got {ref!r:.80}")
    text = ref.strip()
    parsed = urlparse(text)
    scheme = parsed.scheme.lower()
    if scheme in _REMOTE_SCHEMES:
        raise DatasetError(f"{where}: image {ref!r} is a remote URL; VisualMath-v0 reads local files only "
                           "(download the image and point the dataset at the file)")
    if scheme == "data":
        raise DatasetError(f"{where}: image {ref[:40]!r}... is an inline data URI; save it as a file instead")
    if scheme == "file":
        # file:///abs/path is the norm; file://figs/a.png (a relative path written as a URL) is read leniently.
        host = "" if parsed.netloc in ("", "localhost") else parsed.netloc
        path = Path(url2pathname(unquote(host + parsed.path)))
    elif len(scheme) > 1:  # a one-letter scheme is a Windows drive ("C:\\figs\\a.png")
        raise DatasetError(f"{where}: image {ref!r} has an unsupported URL scheme {parsed.scheme!r}")
    else:
        path = Path(text)
    path = path.expanduser()
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        raise DatasetError(f"{where}: image {ref!r} not found (looked for {path})")
    try:
        image = _open(path, ref, where)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{where}: image {ref!r} is not a readable image ({type(exc).__name__})") from None
    with image:
        check_image_size(image, ref, where, image_size)
        try:
            image.verify()
        except _DECODE_ERRORS as exc:
            raise DatasetError(f"{where}: image {ref!r} could not be decoded ({type(exc).__name__}: "
                               f"{str(exc)[:120]})") from None
    return path


def open_image(row: TaskRow, image_size: tuple[int, int] | None = None) -> Image.Image:
    """The RGB pixels of a loaded (or replayed) row's image, refused past the pixel cap of ``image_size`` before
    decoding; a file that fails to decode raises DatasetError naming the record."""
    where, ref = row.get("where", row.get("id", "the task")), row.get("image_ref", row["image_file"])
    try:
        with _open(row["image_file"], ref, where) as image:
            check_image_size(image, ref, where, image_size)
            image.load()
            return image.convert("RGB")
    except FileNotFoundError:
        raise DatasetError(f"{where}: image {ref!r} not found (looked for {row['image_file']})") from None
    except DatasetError:
        raise
    except _DECODE_ERRORS as exc:
        raise DatasetError(f"{where}: image {ref!r} could not be decoded ({type(exc).__name__}: "
                           f"{str(exc)[:120]})") from None
