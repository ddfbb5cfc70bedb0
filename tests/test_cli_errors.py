"""Every command line answers a bad input with one line on stderr naming it, and exit status 2.

The first case of each CLI runs as a user runs it (``python -m`` in a subprocess); the others run the same
``__main__`` code in this process (:func:`runpy.run_module`, as ``python -m`` does, stdout and stderr captured), which
saves the 3-4 s interpreter start and imports per case. Every case fails before any model loads, so none trains.
The env kwargs the CLIs pass on are checked by the envs themselves, at ``gym.make``: those tests are here too.
"""

from __future__ import annotations

import math
import os
import runpy
import socket
import subprocess
import sys
import warnings

import gymnasium as gym
import pytest

import lmmr1_env  # noqa: F401  (registers the envs)

BAD_JSON = "LMMR1/TextMath-v0:{bad"
BAD_KWARG = 'LMMR1/TextMath-v0:{"nope": 1}'
BAD_DIFFICULTY = 'LMMR1/TextMath-v0:{"difficulty": 9}'
# A stage that would train for minutes if a check let it through is cut to nothing.
NO_TRAINING = ["--num-steps", "0"]
NO_ALIGNING = ["--labels-steps", "0", "--language-steps", "0"]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_module(module: str, *args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYGAME_HIDE_SUPPORT_PROMPT": "1", "SDL_VIDEODRIVER": "dummy",
           "SDL_AUDIODRIVER": "dummy"}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=180, env=env)


#: Python's warning filters for a script (``python -m``), which pytest's replace: what the user would see.
_PYTHON_WARNING_FILTERS = [("default", DeprecationWarning, "__main__"), ("ignore", DeprecationWarning, None),
                           ("ignore", PendingDeprecationWarning, None), ("ignore", ImportWarning, None),
                           ("ignore", ResourceWarning, None)]


def run_module_in_process(module: str, *args: str, cwd, capfd, monkeypatch) -> subprocess.CompletedProcess:
    """``python -m module args`` run by :func:`runpy.run_module` in this process, seeing what the interpreter would
    print: the exit status it would give (a message ``SystemExit`` is printed on stderr with status 1), both file
    descriptors, the warnings Python's default filters show, and the log records of warning level and above (its
    last-resort handler)."""
    import logging

    import torch

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [module, *args])
    environ = dict(os.environ)  # a __main__ may set variables (align's OMP_WAIT_POLICY)
    os.environ.update(OMP_NUM_THREADS="1", PYGAME_HIDE_SUPPORT_PROMPT="1", SDL_VIDEODRIVER="dummy",
                      SDL_AUDIODRIVER="dummy")
    threads = torch.get_num_threads()
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    capfd.readouterr()
    try:
        with warnings.catch_warnings(record=True) as shown:
            warnings.resetwarnings()
            for action, category, where in _PYTHON_WARNING_FILTERS:
                warnings.filterwarnings(action, category=category, module=where or "")
            # runpy's own: the module was imported before it runs as __main__ (a real run imports it once)
            warnings.filterwarnings("ignore", message=".* found in sys.modules after import", category=RuntimeWarning)
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as exc:
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
                code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        for warning in shown:
            print(warnings.formatwarning(warning.message, warning.category, warning.filename, warning.lineno),
                  file=sys.stderr, end="")
    finally:
        logging.getLogger().removeHandler(handler)
        torch.set_num_threads(threads)
        os.environ.clear()
        os.environ.update(environ)
    out = capfd.readouterr()
    return subprocess.CompletedProcess([module, *args], code, out.out, out.err)


def assert_one_line_error(done: subprocess.CompletedProcess, needle: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(lines) == 1 and needle in lines[-1], lines


CASES = {
    "lmmr1_agent.evaluate": [
        (["--episodes", "abc"], "argument --episodes: invalid int value: 'abc'"),
        (["--episodes", "0"], "--episodes must be at least 1"),
        (["--device", "cuda:1"], "sees no CUDA device on this machine; use --device cpu (or auto)"),
        (["--dtype", "half"], "--dtype must be one of auto, float32, bfloat16, got 'half'"),
        (["--batch-size", "-3"], "--batch-size must be at least 1"),
        (["--temperature", "nan"], "--temperature"),
        (["--max-new-tokens", "0"], "--max-new-tokens"),
        (["--request-timeout", "0"], "--request-timeout"),
        (["--env", "LMMR1/Chess-v0"], "'LMMR1/Chess-v0' is not a registered environment"),
        (["--env", BAD_JSON], "not valid JSON"),
        (["--env", "LMMR1/TextMath-v0:[1, 2]"], "must be a JSON object"),
        (["--env", BAD_KWARG], "--env LMMR1/TextMath-v0: unknown argument 'nope'"),
        (["--env", BAD_DIFFICULTY], "--env LMMR1/TextMath-v0: difficulty must be"),
        (["--env", 'LMMR1/TextMath-v0:{"verify_timeout": 1e999}'], "verify_timeout"),
        (["--agent", "/nonexistent"], "--agent /nonexistent: model folder '/nonexistent' does not exist"),
        (["--agent", "gpt-17"], "unknown agent 'gpt-17'"),
        (["--agent", "http://127.0.0.1:{port}/v1", "--api-model", "m", "--episodes", "1", "--request-budget", "1"],
         "openai:m at http://127.0.0.1:{port}/v1: no answer"),
        (["--output", "/proc/nope"], "--output /proc/nope"),
        (["--env", 'LMMR1/TextMath-v0:{"dataset": "{tmp}/latin1.jsonl"}'], "line 2 of latin1.jsonl: not UTF-8"),
        (["--episodes", "-5"], "--episodes must be at least 1, got -5"),
        (["--batch-size", "1.5"], "argument --batch-size: invalid int value: '1.5'"),
        (["--temperature", "abc"], "argument --temperature: invalid float value: 'abc'"),
        (["--temperature", "-1"], "--temperature must be a finite number at least 0"),
        (["--seed", "-1"], "--seed must be at least 0"),
        (["--max-concurrency", "0"], "--max-concurrency must be at least 1"),
        (["--request-budget", "inf"], "--request-budget must be a finite number above 0"),
        (["--min-pixels", "5000", "--max-pixels", "100"], "--min-pixels 5000 is above --max-pixels 100"),
        (["--split", "dev"], "argument --split: invalid choice: 'dev'"),
        (["--history", "nope"], "argument --history: invalid choice: 'nope'"),
        (["--api-model"], "argument --api-model: expected one argument"),
        (["--env", "LMMR1/TextMath-v0", "--env", BAD_JSON], "not valid JSON"),  # every repeat is checked
        (["--env", 'LMMR1/TextMath-v0:{"split": "dev"}'], "--env LMMR1/TextMath-v0: split must be one of"),
    ],
    "lmmr1_agent.train": [
        (["--lr", "abc"], "invalid float value: 'abc'"),
        (["--stage", "fre", "--lr", "inf", *NO_TRAINING], "actor_learning_rate"),
        (["--stage", "fre", "--eval-prompts", "0", *NO_TRAINING], "eval_prompts must be at least 1"),
        (["--stage", "fre", "--env", "LMMR1/Chess-v0"], "'LMMR1/Chess-v0' is not a registered environment"),
        (["--stage", "fre", "--env", BAD_JSON], "not valid JSON"),
        (["--stage", "fre", "--env", BAD_KWARG], "--env LMMR1/TextMath-v0: unknown argument 'nope'"),
        (["--stage", "fre", "--env", BAD_DIFFICULTY], "--env LMMR1/TextMath-v0: difficulty must be"),
        (["--stage", "fre", "--model", "/nonexistent", *NO_TRAINING], "model folder '/nonexistent' does not exist"),
        (["--stage", "fre", "--output-dir", "/proc/nope", *NO_TRAINING], "--output-dir /proc/nope"),
        (["--stage", "fre", "--env", "LMMR1/TextMath-v0:[1, 2]"], "must be a JSON object"),
        (["--stage", "nope"], "argument --stage: invalid choice: 'nope'"),
        (["--stage", "fre", "--n-samples-per-prompt", "x"], "argument --n-samples-per-prompt: invalid int value"),
        (["--stage", "fre", "--n-samples-per-prompt", "0"], "batch sizes must be at least 1"),
        (["--stage", "fre", "--micro-train-batch-size", "64"], "train_batch_size must be at least micro_train_batch"),
        (["--stage", "fre", "--loss-aggregation", "mean"], "loss_aggregation must be one of"),
        (["--stage", "fre", "--history", "nope"], "history must be one of"),
        (["--stage", "fre", "--temperature", "0"], "temperature must be positive"),
        (["--stage", "fre", "--max-norm", "-1"], "max_norm must be positive"),
        (["--stage", "fre", "--max-norm", "nan"], "max_norm must be a finite number"),
        (["--stage", "fre", "--lr-warmup-ratio", "2"], "lr_warmup_ratio must be in [0, 1]"),
        (["--stage", "fre", "--adam-betas", "[0.9"], "argument --adam-betas: invalid JSON value"),
        (["--stage", "fre", "--adam-betas", "[2, 0.5]"], "adam_betas must be two numbers in [0, 1)"),
        (["--stage", "fre", "--freeze-prefix", '"model."'], "freeze_prefix must be list, got 'model.'"),
        (["--stage", "fre", "--config", "/nonexistent.yaml"], "config file '/nonexistent.yaml' not found"),
        (["--stage", "fre", "--device", "cuda"], "sees no CUDA device on this machine; use --device cpu (or auto)"),
        (["--stage", "fre", "--device", "gpu"], "device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        (["--stage", "fre", "--dtype", "fp8"], "dtype must be one of auto, float32, bfloat16, got 'fp8'"),
        (["--stage", "fre", "--attn-implementation", "magic"], "attn_implementation must be one of auto, eager"),
        (["--config", "/nonexistent.yaml"], "--config names one stage's file"),
    ],
    "lmmr1_agent.align": [
        (["--labels-steps", "x"], "argument --labels-steps: invalid int value: 'x'"),
        (["--image-size", "0", *NO_ALIGNING], "--image-size must be a positive multiple of 16"),
        (["--labels-lr", "nan", *NO_ALIGNING], "--labels-lr"),
        (["--text-model", "/nonexistent", *NO_ALIGNING], "model folder '/nonexistent' does not exist"),
        (["--output", "/proc/nope", *NO_ALIGNING], "--output /proc/nope"),
        (["--seed", "1.5"], "argument --seed: invalid int value: '1.5'"),
        (["--labels-batch", "0", *NO_ALIGNING], "--labels-batch must be at least 1, got 0"),
        (["--lora-rank", "-1", *NO_ALIGNING], "--lora-rank must be 0 or more, got -1"),
        (["--lora-alpha", "inf", *NO_ALIGNING], "--lora-alpha must be a finite number above 0"),
        (["--families", "nope", *NO_ALIGNING], "--families: unknown ['nope']"),
        (["--difficulties", "9", *NO_ALIGNING], "--difficulties must be numbers 1-5, got '9'"),
        (["--difficulties", "x", *NO_ALIGNING], "--difficulties must be numbers 1-5, got 'x'"),
        (["--tower-widths", "8,16", *NO_ALIGNING], "--tower-widths '8,16' and --tower-depths '1,1,2' must each name"),
        (["--tower-widths", "a,b,c", *NO_ALIGNING], "--tower-widths must be comma-separated whole numbers"),
    ],
    "lmmr1_agent.align.probe": [
        (["--steps", "x"], "argument --steps: invalid int value: 'x'"),
        (["--family", "nope"], "argument --family: invalid choice: 'nope'"),
        (["--image-size", "0"], "--image-size"),
        (["--threads", "0"], "--threads"),
        (["--lr", "-1"], "--lr"),
        (["--lr", "nan"], "--lr must be a finite number above 0, got nan"),
        (["--batch", "abc"], "argument --batch: invalid int value: 'abc'"),
        (["--tower", "nope"], "argument --tower: invalid choice: 'nope'"),
        (["--held-out", "0"], "--held-out"),
        (["--tower", "resnet", "--bn-recal", "-1"], "--bn-recal must be 0 or more figures, got -1"),
        (["--bn-recal", "5"], "--bn-recal 5: the qwen tower has no BatchNorm"),
        (["--window", "30"], "--image-size and --window must be positive multiples of 28"),
        (["--width", "10"], "--width must split into 4 heads"),
        (["--tower", "resnet", "--image-size", "100"], "multiple of 16 for the resnet tower, got 100"),
    ],
    "lmmr1_env.football.play": [
        (["--size", "0", "0"], "--size 0 0: image_size must be between 16 and 4096"),
        (["--scenario", "nope"], "--scenario nope: unknown football scenario"),
        (["--seed", "x"], "argument --seed: invalid int value: 'x'"),
    ],
}


@pytest.mark.parametrize("module,args,needle,subprocess_run",
                         [(m, a, n, k == 0) for m, cases in CASES.items() for k, (a, n) in enumerate(cases)],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else v if isinstance(v, str) else
                         ("python -m" if v else "in process") if isinstance(v, bool) else None)
def test_a_bad_input_is_one_line_and_exit_2(tmp_path, capfd, monkeypatch, module, args, needle, subprocess_run):
    (tmp_path / "latin1.jsonl").write_bytes(b'{"problem": "1+1", "answer": "2"}\n{"problem": "caf\xe9", "answer": 1}\n')
    port = str(closed_port())
    args = [a.replace("{port}", port).replace("{tmp}", str(tmp_path)) for a in args]
    if subprocess_run:
        done = run_module(module, *args, cwd=tmp_path)
    else:
        done = run_module_in_process(module, *args, cwd=tmp_path, capfd=capfd, monkeypatch=monkeypatch)
    assert_one_line_error(done, needle.replace("{port}", port))


def test_a_yaml_env_mixture_is_checked_before_any_model_loads(tmp_path, capfd, monkeypatch):
    bad_mgt = tmp_path / "mgt.yaml"
    bad_mgt.write_text("envs: [{id: LMMR1/VisualMath-v0, kwargs: {families: [nope]}}]\n")
    done = run_module_in_process("lmmr1_agent.train", "--stage", "mgt", "--config", str(bad_mgt), "--output-dir",
                                 str(tmp_path / "run"), cwd=tmp_path, capfd=capfd, monkeypatch=monkeypatch)
    assert_one_line_error(done, "envs[0] (LMMR1/VisualMath-v0): unknown VisualMath families ['nope']")


# ---- env kwargs, checked at gym.make ----

@pytest.mark.parametrize("env_id", ["LMMR1/TextMath-v0", "LMMR1/VisualMath-v0"])
@pytest.mark.parametrize("kwargs,error,needle", [
    ({"difficulty": 2.0}, TypeError, "difficulty must be an int in (1, 2, 3, 4, 5) or a list of them, got 2.0"),
    ({"difficulty": True}, TypeError, "difficulty must be an int"),
    ({"difficulty": [2, "3"]}, TypeError, "difficulty must be an int"),
    ({"difficulty": []}, ValueError, "difficulty"),
    ({"families": "arithmetic"}, TypeError, "families must be a list of family names, not the string 'arithmetic'"),
    ({"families": [3]}, ValueError, "unknown"),
    ({"verify_timeout": math.inf}, ValueError, "verify_timeout must be a finite number of seconds above 0, got inf"),
    ({"verify_timeout": math.nan}, ValueError, "verify_timeout must be a finite number"),
    ({"verify_timeout": 0}, ValueError, "verify_timeout must be a finite number"),
    ({"verify_timeout": -1}, ValueError, "verify_timeout must be a finite number"),
    ({"verify_timeout": "3"}, TypeError, "verify_timeout must be a number of seconds, got '3'"),
    ({"verify_timeout": True}, TypeError, "verify_timeout must be a number of seconds"),
])
def test_math_env_kwargs_are_checked_naming_the_argument(env_id, kwargs, error, needle):
    with pytest.raises(error) as err:
        gym.make(env_id, **kwargs)
    assert needle in str(err.value)


def test_good_math_env_kwargs_still_work():
    env = gym.make("LMMR1/TextMath-v0", difficulty=[1, 3], families=("arithmetic",), verify_timeout=2)
    assert env.unwrapped.difficulties == (1, 3) and env.unwrapped.verify_timeout == 2.0
    assert gym.make("LMMR1/VisualMath-v0", difficulty=5, families=["clock"]).unwrapped.families == ("clock",)
