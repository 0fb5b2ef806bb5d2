"""Ship a fine-tuned CTC model outside the recipe: ONNX for onnxruntime / sherpa-onnx
(:mod:`hourglass_w2v2.export.onnx`, :mod:`hourglass_w2v2.export.sherpa`) and a Hugging Face
``Wav2Vec2ForCTC`` folder (:mod:`hourglass_w2v2.export.hf`)."""


class ExportError(ValueError):
    """A model or lang dir that cannot be exported as asked; the message says why and what to do."""
