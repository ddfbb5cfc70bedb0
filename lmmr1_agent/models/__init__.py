"""Model building: the embedded default (SmolLM2-135M-Instruct), the embedded VLM around it (FastVLM with a
ResNet tower, :mod:`~lmmr1_agent.models.fastvlm`) and the Qwen2.5-VL graft (:mod:`~lmmr1_agent.models.graft`)."""
