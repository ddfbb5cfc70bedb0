"""A toy env with a dense reward a tiny random model can learn within a few dozen steps (learner tests)."""

from __future__ import annotations

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
