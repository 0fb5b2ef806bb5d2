"""Corpus generation and lhotse data preparation (recipe stages 0-3), and training datasets.

Stages 0-3: ``grammar`` (seeded sentence grammar of the synthetic corpus), ``synth`` (the
espeak-ng corpus generator), ``librispeech`` (checked reading of LibriSpeech-layout folders into
stage-1 manifests), ``subsets`` (stage-2 Libri-Light fine-tuning subsets), ``cuts`` (stage-3
raw-audio cut sets), ``testing`` (a fake LibriSpeech tree for tests).
"""
