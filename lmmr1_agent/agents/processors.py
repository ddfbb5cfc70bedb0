"""Loading a model's ``AutoProcessor`` on a machine without torchvision (lmmr1's CPU install: no torchvision build
imports beside the pinned CPU torch). transformers 5.x then cannot build any processor that has a video processor
(Qwen2-VL, Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision, SmolVLM: "Can't load video processor"), although lmmr1 sends
images only. :func:`image_only_processors` lets those processors build without one; videos stay an error."""

from __future__ import annotations


def image_only_processors() -> None:
    """Without torchvision, drop ``video_processor`` from processors' sub-processors (transformers cannot build one
    then), so Qwen-VL, LLaVA-OneVision and SmolVLM processors build, save and load for images and text. SmolVLM
    also gets a stand-in for the frame counts its ``apply_chat_template`` reads, and for ``num2words`` (used only to
    write video prompts) when that package is missing. Does nothing when torchvision is installed; idempotent."""
    from transformers.processing_utils import ProcessorMixin
    from transformers.utils import is_torchvision_available

    if is_torchvision_available() or getattr(ProcessorMixin, "_lmmr1_image_only", False):
        return
    original = ProcessorMixin.__dict__["get_attributes"].__func__

    def get_attributes(cls):
        return [name for name in original(cls) if name != "video_processor"]

    ProcessorMixin.get_attributes = classmethod(get_attributes)
    ProcessorMixin._lmmr1_image_only = True

    from transformers.models.smolvlm import processing_smolvlm

    class NoVideoProcessor:
        num_frames = None
        fps = None

        def __call__(self, *args, **kwargs):
            raise ImportError("videos need torchvision (this processor was built without a video processor)")

    smolvlm = processing_smolvlm.SmolVLMProcessor
    smolvlm.video_processor = NoVideoProcessor()
    smolvlm.__init__.__defaults__ = (None, *(smolvlm.__init__.__defaults__ or ()))  # video_processor=None
    if not processing_smolvlm.num2words:
        processing_smolvlm.num2words = str


def load_processor(path: str, tokenizer, **kwargs):
    """The ``AutoProcessor`` of a model folder or hub id, holding ``tokenizer`` (the agent's own: left padding, a
    pad token), or None when the folder has no processor with an image processor and a tokenizer."""
    from transformers import AutoProcessor

    image_only_processors()
    try:
        processor = AutoProcessor.from_pretrained(path, **kwargs)
    except OSError:
        return None
    if not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
        return None  # a bare tokenizer or image processor
    processor.tokenizer = tokenizer
    return processor
