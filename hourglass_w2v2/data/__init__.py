"""Data: corpus generation, preparation stages (recipe stages 0-3) and runtime datasets.

- ``synth``: the synthetic corpus (stage 0): ``grammar`` (seeded sentence grammar) and ``corpus``
  (the espeak-ng generator);
- ``prepare``: ``librispeech`` (checked reading of LibriSpeech-layout folders into stage-1
  manifests), ``subsets`` (stage-2 Libri-Light fine-tuning subsets), ``cuts`` (stage-3 raw-audio
  cut sets);
- ``datasets``: what training and decoding read at run time (cut sets, samplers, datasets).
"""
