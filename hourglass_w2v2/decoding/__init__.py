"""CTC decoding: greedy search, kaldi-decoder / k2 graph search, test-set runner."""

from hourglass_w2v2.decoding.greedy import ctc_greedy_search
from hourglass_w2v2.decoding.kaldi_backend import GraphSearch, SearchOptions
from hourglass_w2v2.decoding.methods import GRAPHS, METHODS, Decoder

__all__ = ["GRAPHS", "METHODS", "Decoder", "GraphSearch", "SearchOptions", "ctc_greedy_search"]
