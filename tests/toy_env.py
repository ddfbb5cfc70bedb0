"""A toy env with a dense reward a tiny random model can learn within a few dozen steps (learner tests)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import gymnasium as gym

from lmmr1_env.core import LMMEnv


class DigitsEnv(LMMEnv):
    """Reward = the share of characters in the response that are digits (0 for an empty response)."""

    system_prompt = "Answer with digits only."
    demonstration = [{"role": "user", "content": "Say a number."}, {"role": "assistant", "content": "42"}]
    metadata = {"render_modes": []}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._needs_reset = False
        return self._observation(f"Say a number. ({seed})"), {"system_prompt": self.system_prompt}

    def step(self, action):
        self._check_action(action)
        self._needs_reset = True
        share = sum(c.isdigit() for c in action) / len(action) if action else 0.0
        return self._observation(""), share, True, False, {"reward_terms": {"digits": share}, "success": share > 0.5}


if "Toy/Digits-v0" not in gym.registry:
    gym.register(id="Toy/Digits-v0", entry_point="tests.toy_env:DigitsEnv")


class CountdownEnv(LMMEnv):
    """Multi-turn: three turns, each rewarded with the share of digits in the response (for history tests)."""

    system_prompt = "Answer every turn with digits only."
    demonstration = None
    metadata = {"render_modes": []}
    turns = 3

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._needs_reset, self._left = False, self.turns
        return self._observation(f"Turn 1 of {self.turns}. ({seed})"), {"system_prompt": self.system_prompt}

    def step(self, action):
        self._check_action(action)
        self._left -= 1
        share = sum(c.isdigit() for c in action) / len(action) if action else 0.0
        done = self._left == 0
        self._needs_reset = done
        text = "" if done else f"Turn {self.turns - self._left + 1} of {self.turns}."
        return self._observation(text), share, done, False, {"reward_terms": {"digits": share}}


if "Toy/Countdown-v0" not in gym.registry:
    gym.register(id="Toy/Countdown-v0", entry_point="tests.toy_env:CountdownEnv")


class SlowDigitsEnv(DigitsEnv):
    """Digits with a slow ``step`` that leaves the playing process's pid in ``$LMMR1_TOY_PIDS`` (train split
    only): a test can find an env runner's process mid-rollout and kill it."""

    def step(self, action):
        folder = os.environ.get("LMMR1_TOY_PIDS")
        if folder and self.split == "train":
            Path(folder, str(os.getpid())).touch()
            time.sleep(0.1)
        return super().step(action)


if "Toy/SlowDigits-v0" not in gym.registry:
    gym.register(id="Toy/SlowDigits-v0", entry_point="tests.toy_env:SlowDigitsEnv")
