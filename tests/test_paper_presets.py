"""The paper's presets (configs/paper/) are real configs: every key is one the learner knows, the values validate,
and a dataset file that is not there is a one-line error naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from lmmr1_agent.cli import ConfigError
from lmmr1_agent.learner.config import load_yaml, resolve

PRESETS = sorted((Path(__file__).parent.parent / "configs" / "paper").glob("*.yaml"))


def test_the_paper_presets_are_all_there():
    assert {p.stem for p in PRESETS} == {"fre_text", "fre_multi", "mgt_geo", "mgt_percereason", "mgt_sokoban",
                                         "direct_rl_geo", "direct_rl_percereason", "direct_rl_sokoban"}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_a_preset_validates_with_its_data_and_names_the_file_it_misses(preset, tmp_path, monkeypatch):
    values = load_yaml(preset)
    wanted = [env["kwargs"]["dataset"] for env in values["envs"] if "dataset" in env["kwargs"]]
    monkeypatch.chdir(tmp_path)
    if wanted:
        with pytest.raises(ConfigError, match=f"dataset file '{wanted[0]}' not found"):
            resolve(values, {})
    (tmp_path / "data").mkdir()
    Image.new("RGB", (64, 48), "white").save(tmp_path / "data" / "figure.png")
    for path in wanted:  # a two-row file of the kind the preset reads
        image = [{"type": "image", "image": "figure.png"}] if "vermulti" in path else []
        rows = [{"message": json.dumps([{"role": "user", "content": [*image, {"type": "text", "text": q}]}]),
                 "answer": a} for q, a in (("What is 2 + 3?", "$5$"), ("What is 4 + 4?", "$8$"))]
        (tmp_path / path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = resolve(values, {})
    assert config.model == "Qwen/Qwen2.5-VL-3B-Instruct" and config.n_samples_per_prompt == 16
    assert config.freeze_prefix == ["vision_tower"] and config.gradient_checkpointing
    assert config.from_base == preset.stem.startswith("direct_rl")
