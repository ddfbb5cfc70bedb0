#!/usr/bin/env bash
# The test command: install (with the test and deepspeed extras), make sure a headless Chromium is there for the HTML
# report tests, then run the whole pytest suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "tests need Chromium and chromedriver: sudo apt-get install chromium chromium-driver" >&2
    exit 1
  fi
fi
EXTRAS=test,deepspeed bash scripts/install.sh
bash scripts/vllm_env/install.sh || echo "warning: the vLLM environment did not install; tests/test_vllm.py is skipped" >&2
.venv/bin/python -m pytest "$@"
