"""lmmr1_env: Gymnasium environments with rule-based, verifiable rewards for LMMs.

``import lmmr1_env`` registers every ``LMMR1/*`` id (Gymnasium 1.x has no plugin auto-loading;
``gym.register_envs(lmmr1_env)`` is the documented idiom). Entry points are strings, so importing
this package stays cheap.
"""

from gymnasium.envs.registration import register, registry

from lmmr1_env.chat import build_messages, user_message
from lmmr1_env.core import LMMEnv, letterbox
from lmmr1_env.rewards import MathScore, score_math
from lmmr1_env.spaces import TextSpace

__all__ = ["LMMEnv", "MathScore", "TextSpace", "build_messages", "letterbox", "registered_ids", "score_math",
           "user_message"]

# ---- the registry: every LMMR1/* id, one line each ----
_ENVS = {
    "LMMR1/TextMath-v0": "lmmr1_env.textmath.env:TextMathEnv",
    "LMMR1/VisualMath-v0": "lmmr1_env.visualmath.env:VisualMathEnv",
    "LMMR1/Sokoban-v0": "lmmr1_env.sokoban.env:SokobanEnv",
    "LMMR1/FootballGame-v0": "lmmr1_env.football.env:FootballEnv",
}
for _id, _entry_point in _ENVS.items():
    if _id not in registry:
        register(id=_id, entry_point=_entry_point)


def registered_ids() -> list[str]:
    """Every ``LMMR1/*`` environment id, in registration order."""
    return list(_ENVS)
