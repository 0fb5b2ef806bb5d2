"""CTC decoding: graph loading, kaldi-decoder / k2 graph search, lattices, methods, runner."""

from hourglass_w2v2.decoding.methods import GRAPHS, METHODS, Decoder
from hourglass_w2v2.decoding.search import GraphSearch, SearchOptions

__all__ = ["GRAPHS", "METHODS", "Decoder", "GraphSearch", "SearchOptions"]
