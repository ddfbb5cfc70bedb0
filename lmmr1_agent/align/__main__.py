"""``python -m lmmr1_agent.align``: see :mod:`lmmr1_agent.align.run`."""

import os

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads made
# steps 3-7x slower (measured) whenever another process was busy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lmmr1_agent.align.run import main  # noqa: E402  (after the OpenMP setting, before torch loads)
from lmmr1_agent.cli import run_main  # noqa: E402

run_main(main)  # a bad setting: one line on stderr, exit status 2
