"""hourglass-w2v2: wav2vec 2.0 with an Hourglass Transformer encoder, as an icefall-style recipe."""

__version__ = "0.1.0"
