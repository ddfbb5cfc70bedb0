"""Model building: the embedded default (SmolLM2-135M-Instruct) and its Qwen2.5-VL graft."""
