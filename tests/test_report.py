"""The HTML evaluation report, opened in a real headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from lmmr1_agent.report import write_report
from lmmr1_agent.rollout import Episode, Turn

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _episode(seed: int, success: bool, with_image: bool) -> Episode:
    image = np.zeros((64, 96, 3), np.uint8)
    image[:, : 32 + seed] = (200, 30, 30)
    turn = Turn(text=f"question {seed} <b>not bold</b>", image=image if with_image else None,
                response="<think>x</think><answer>3</answer>", reward=1.5 if success else 0.5,
                reward_terms={"format": 0.5, "accuracy": 1.0 if success else 0.0},
                parse_error=None if success else "math-verify found no answer")
    return Episode(env_id="LMMR1/Test-v0", seed=seed, system_prompt="rules", turns=[turn],
                   reward_terms=dict(turn.reward_terms), success=success)


def test_report_renders_images_and_filters(tmp_path, browser):
    episodes = [_episode(s, success=s % 2 == 0, with_image=s < 3) for s in range(4)]
    page = write_report(tmp_path / "report.html", "test report", [{"env": "LMMR1/Test-v0"}], episodes, "a table")
    browser.get(page.as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);")
    assert images == [[True, 96, 64]] * 3
    assert browser.execute_script("return document.querySelectorAll('details.episode').length") == 4
    # model text is shown, never interpreted as HTML
    assert browser.execute_script("return document.querySelectorAll('pre b').length") == 0
    browser.execute_script("filterEpisodes('failure')")
    shown = browser.execute_script("return Array.from(document.querySelectorAll('details.episode'))"
                                   ".filter(d => d.style.display !== 'none').map(d => d.dataset.outcome)")
    assert shown == ["failure", "failure"]


def test_evaluate_writes_a_report_chromium_can_open(tmp_path, browser):
    done = subprocess.run([sys.executable, "-m", "lmmr1_agent.evaluate", "--agent", "oracle", "--episodes", "5",
                           "--no-progress", "--output", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "report:" in done.stdout
    browser.get((tmp_path / "report.html").as_uri())
    assert browser.execute_script("return document.querySelectorAll('details.episode').length") == 5
    assert "1.500" in browser.find_element("tag name", "body").text
    assert json.loads((tmp_path / "results.json").read_text())["results"][0]["episodes"] == 5


def test_long_runs_keep_a_bounded_number_of_images(tmp_path):
    from lmmr1_agent.report import IMAGE_EPISODES, IMAGE_TURNS

    image = np.zeros((8, 8, 3), np.uint8)
    turns = [Turn(text=f"turn {t}", image=image, response="r", reward=0.0, reward_terms={}) for t in range(40)]
    episodes = [Episode(env_id="LMMR1/Test-v0", seed=s, system_prompt="", turns=turns) for s in range(30)]
    page = write_report(tmp_path / "r.html", "long", [], episodes, "")
    html = page.read_text()
    assert html.count("<img") == IMAGE_EPISODES * IMAGE_TURNS
    assert html.count("<pre>turn 39</pre>") == 30  # every turn's text stays
    assert len(list((tmp_path / "images").iterdir())) == IMAGE_EPISODES * IMAGE_TURNS
