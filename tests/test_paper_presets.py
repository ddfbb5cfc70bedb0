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
    if preset.stem.startswith("mgt"):  # MGT starts from FRE-Text's result: a missing one is named
        with pytest.raises(ConfigError, match="model folder 'runs/paper-fre-text/fre/final' does not exist"):
            resolve(values, {})
        (tmp_path / "runs/paper-fre-text/fre/final").mkdir(parents=True)
        (tmp_path / "runs/paper-fre-text/fre/final/config.json").write_text("{}")
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
    assert config.n_samples_per_prompt == 16 and config.gradient_checkpointing
    assert config.model == ("runs/paper-fre-text/fre/final" if preset.stem.startswith("mgt")
                            else "Qwen/Qwen2.5-VL-3B-Instruct")
    assert config.from_base == (config.stage == "mgt")


def test_every_preset_writes_its_own_run_folder():
    folders = [load_yaml(p)["output_dir"] for p in PRESETS]
    assert len(set(folders)) == len(folders)


def test_the_presets_freeze_qwen_vits_with_its_merger(tmp_path):
    from transformers import AutoModelForImageTextToText

    from lmmr1_agent.models.parts import frozen_prefixes
    from tests.tiny_vlms import FAMILIES

    model = AutoModelForImageTextToText.from_pretrained(FAMILIES["qwen2_5_vl"](tmp_path / "qwen"))
    for preset in PRESETS:
        assert frozen_prefixes(model, load_yaml(preset)["freeze_prefix"]) == ("model.visual.",)
