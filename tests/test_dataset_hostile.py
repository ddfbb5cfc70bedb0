"""Hostile dataset files fail at ``gym.make`` with one line naming the file and the record, never a bare traceback.

Every file is made here, tiny, in ``tmp_path``: bytes that are not UTF-8, rows nested past Python's recursion
limit, a UTF-8 byte-order mark (accepted everywhere), a truncated PNG, and a PNG whose header claims more
pixels than the env would ever show.
"""

from __future__ import annotations

import json
import struct
import zlib

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import lmmr1_env  # noqa: F401  (registers the envs)
from lmmr1_env.datasets import DatasetError, read_records
from lmmr1_env.sokoban.levels import LevelError, load_levels

ROW = {"problem": "1+1", "answer": "2"}
DEEP = "[" * 100_000 + "]" * 100_000
LEVEL = "#####\n#@$.#\n#####\n"


def _image_row(ref: str) -> dict:
    chat = [{"role": "user", "content": [{"type": "image", "image": ref}, {"type": "text", "text": "How many?"}]}]
    return {"message": json.dumps(chat), "answer": "3"}


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")


def _png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header says width x height (8-bit RGB) with one empty data chunk: no pixels to decode."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))


# ---- bytes that are not UTF-8 ----

def test_a_non_utf8_byte_in_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(_jsonl([ROW, ROW]) + b'{"problem": "caf\xe9", "answer": "1"}\n')
    with pytest.raises(DatasetError) as err:
        gym.make("LMMR1/TextMath-v0", dataset=str(path))
    message = str(err.value)
    assert message.startswith("line 3 of train.jsonl: not UTF-8 text") and "0xe9" in message and "\n" not in message


def test_a_non_utf8_byte_in_json_names_file_and_line(tmp_path):
    path = tmp_path / "train.json"
    path.write_bytes(b'[\n{"problem": "1+1", "answer": "2"},\n{"problem": "\xff", "answer": "2"}\n]\n')
    with pytest.raises(DatasetError, match=r"^line 3 of train\.json: not UTF-8 text"):
        read_records(path)


def test_a_non_utf8_sokoban_file_names_file_and_line(tmp_path):
    path = tmp_path / "levels.xsb"
    path.write_bytes(b"; one\n" + LEVEL.encode() + b"; caf\xe9\n" + LEVEL.encode())
    with pytest.raises(LevelError, match=r"^line 5 of levels\.xsb: not UTF-8 text"):
        load_levels(path)


# ---- rows nested past the recursion limit ----

def test_a_row_nested_100000_deep_names_the_record(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_bytes(_jsonl([ROW]) + b'{"problem": "x", "answer": ' + DEEP.encode() + b"}\n")
    with pytest.raises(DatasetError, match=r"^record 2 of deep\.jsonl: JSON nested too deeply"):
        gym.make("LMMR1/TextMath-v0", dataset=str(path))


def test_a_json_list_with_a_deep_record_names_the_record(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" + json.dumps(ROW) + ", " + json.dumps(ROW) + ", " + DEEP + "]", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"^record 3 of deep\.json: JSON nested too deeply"):
        read_records(path)


def test_a_json_list_error_names_the_record(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"problem": "1", "answer": "1"},\n {"problem": oops}]', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"^record 2 of broken\.json \(line 2\) is not valid JSON"):
        read_records(path)


def test_a_deep_message_string_names_the_record(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_bytes(_jsonl([{"message": DEEP, "answer": "1"}]))
    with pytest.raises(DatasetError, match=r"^record 1 of chat\.jsonl: 'message' is nested too deeply"):
        gym.make("LMMR1/TextMath-v0", dataset=str(path))


# ---- a byte-order mark is accepted everywhere ----

@pytest.mark.parametrize("name", ["bom.jsonl", "bom.json"])
def test_a_utf8_bom_is_accepted(tmp_path, name):
    path = tmp_path / name
    body = _jsonl([ROW]) if name.endswith(".jsonl") else json.dumps([ROW]).encode()
    path.write_bytes(b"\xef\xbb\xbf" + body)
    env = gym.make("LMMR1/TextMath-v0", dataset=str(path))
    assert env.reset(seed=0)[0]["text"] == "1+1"


def test_a_utf8_bom_is_accepted_by_visualmath_and_sokoban(tmp_path):
    Image.new("RGB", (20, 20), (9, 9, 9)).save(tmp_path / "a.png")
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + _jsonl([_image_row("a.png")]))
    assert gym.make("LMMR1/VisualMath-v0", dataset=str(tmp_path / "bom.jsonl")).reset(seed=0)[1]["answer"] == "3"
    (tmp_path / "bom.xsb").write_bytes(b"\xef\xbb\xbf" + LEVEL.encode())
    assert len(load_levels(tmp_path / "bom.xsb")) == 1


# ---- images: truncated, and too many pixels ----

def test_a_truncated_png_fails_at_gym_make_naming_record_and_image(tmp_path):
    Image.new("RGB", (20, 20), (9, 9, 9)).save(tmp_path / "whole.png")
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noisy.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "noisy.png").read_bytes()[:2000])
    (tmp_path / "data.jsonl").write_bytes(_jsonl([_image_row("whole.png"), _image_row("cut.png")]))
    with pytest.raises(DatasetError) as err:
        gym.make("LMMR1/VisualMath-v0", dataset=str(tmp_path / "data.jsonl"))
    message = str(err.value)
    assert message.startswith("record 2 of data.jsonl: image 'cut.png' could not be decoded") and "\n" not in message


def test_an_image_past_the_pixel_cap_is_refused_from_its_header(tmp_path):
    _png_header_only(tmp_path / "huge.png", 12000, 12000)
    (tmp_path / "data.jsonl").write_bytes(_jsonl([_image_row("huge.png")]))
    with pytest.raises(DatasetError) as err:
        gym.make("LMMR1/VisualMath-v0", dataset=str(tmp_path / "data.jsonl"))  # 448 x 448: cap 64 x 448²
    assert str(err.value) == ("record 1 of data.jsonl: image 'huge.png' is 12000×12000 pixels, over the cap of "
                              "12,845,056 (64 × image_size 448×448); shrink it first")


def test_the_pixel_cap_follows_image_size(tmp_path):
    Image.new("RGB", (600, 600), (9, 9, 9)).save(tmp_path / "big.png")
    (tmp_path / "data.jsonl").write_bytes(_jsonl([_image_row("big.png")]))
    assert gym.make("LMMR1/VisualMath-v0", dataset=str(tmp_path / "data.jsonl")).reset(seed=0)
    with pytest.raises(DatasetError, match=r"600×600 pixels, over the cap of 262,144 \(64 × image_size 64×64\)"):
        gym.make("LMMR1/VisualMath-v0", dataset=str(tmp_path / "data.jsonl"), image_size=64)


def test_a_replayed_task_row_gets_the_same_pixel_cap(tmp_path):
    _png_header_only(tmp_path / "huge.png", 12000, 12000)
    env = gym.make("LMMR1/VisualMath-v0")
    row = {"id": "x", "problem": "?", "answer": "1", "image_file": str(tmp_path / "huge.png"), "where": "row x"}
    with pytest.raises(DatasetError, match=r"^row x: image .*huge\.png' is 12000×12000 pixels, over the cap"):
        env.reset(options={"task": row})
