"""Decoding methods: CTC log-probs of one utterance -> words, for every key of a method.

A method turns a ``(T, V)`` log-prob matrix into ``{key: words}``; ``key`` names one setting
(``greedy``, ``no_lm``, ``lm_scale_0.6``), so an LM-scale sweep is one call:

- ``ctc-greedy``: argmax path (key ``greedy``);
- ``1best``: best path through ``H``, ``HL`` or ``HLG`` (keys ``no_lm`` for H/HL,
  ``lm_scale_<s>`` for HLG, one ``FasterDecoder`` search per scale);
- ``nbest``: the ``num_paths`` best word sequences of the lattice, each scored by the log-sum of
  its alignments (icefall's ``nbest``), the best one kept;
- ``lm-rescore``: the same n-best list rescored with a bigger n-gram (the 4-gram), keys
  ``lm_scale_<s>`` weighting the new LM against the acoustics.

``nbest`` and ``lm-rescore`` search once per utterance for a lattice (beam, max-active and
lattice beam as for ``1best``), then draw ``num_paths`` paths from it and score the distinct word
sequences on the whole lattice, as icefall does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from hourglass_w2v2.decoding import k2_backend
from hourglass_w2v2.decoding.graph import load_graph
from hourglass_w2v2.decoding.lattice import nbest_decoding, rescore_nbest
from hourglass_w2v2.decoding.search import GraphSearch, SearchOptions
from hourglass_w2v2.greedy import ctc_greedy_search
from hourglass_w2v2.lang.lm import NgramScorer
from hourglass_w2v2.lang.tokenizer import Tokenizer, read_token_table


class DecodeInputError(ValueError):
    """Input decoding cannot use as given; the message names the file and how to fix it."""


METHODS = ("ctc-greedy", "1best", "nbest", "lm-rescore")
GRAPHS = ("H", "HL", "HLG")


def scale_key(lm_scale: float) -> str:
    """``lm_scale_0.6``: the key of one LM scale (icefall's naming)."""
    return f"lm_scale_{lm_scale:g}"


class Decoder:
    """One decoding method over one graph; :meth:`decode` maps log-probs to ``{key: words}``."""

    def __init__(
        self,
        method: str,
        lang_dir: str | Path,
        graph: str = "HLG",
        options: SearchOptions | None = None,
        lm_scales: Sequence[float] = (1.0,),
        num_paths: int = 50,
        rescore_lm: str | Path | None = None,
        backend: str = "auto",
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown decoding method {method!r}; choose from {METHODS}")
        if graph not in GRAPHS:
            raise ValueError(f"unknown graph {graph!r}; choose from {GRAPHS}")
        if method in ("nbest", "lm-rescore") and graph == "H":
            raise ValueError(f"{method} needs word output: use --graph HL or HLG")
        if method == "lm-rescore" and rescore_lm is None:
            raise ValueError("lm-rescore needs an n-gram to rescore with (--rescore-lm ARPA)")
        if backend not in ("auto", "kaldi", "k2"):
            raise ValueError(f"unknown backend {backend!r}; choose auto, kaldi or k2")
        if any(s <= 0 for s in lm_scales):
            raise ValueError(f"LM scales must be positive, got {list(lm_scales)}")
        self.method = method
        self.graph_name = graph
        self.tokenizer = Tokenizer(lang_dir)
        self.num_paths = num_paths
        # without G the graph has no LM costs, so a scale sweep would change nothing
        self.lm_scales = list(lm_scales) if graph == "HLG" or method == "lm-rescore" else [1.0]
        self.search: GraphSearch | None = None
        self.words: dict[int, str] = {}
        self.rescorer = NgramScorer(rescore_lm) if method == "lm-rescore" else None
        self.k2_graph = None
        k2_path = Path(lang_dir) / f"{graph}.pt"
        k2_ready = k2_path.is_file() and k2_backend.available()
        # auto: k2 for 1best when it imports and compile_graphs wrote the graph's .pt; nbest and
        # lm-rescore take k2's lattice only when asked (--backend k2: never run in our CI)
        if method != "ctc-greedy" and (
            backend == "k2" or (backend == "auto" and method == "1best" and k2_ready)
        ):
            if not k2_ready:
                missing = [] if k2_backend.available() else ["k2 installed"]
                missing += [] if k2_path.is_file() else [f"{k2_path} (written when k2 imports)"]
                raise DecodeInputError(
                    f"--backend k2 needs {' and '.join(missing)}; --backend kaldi (or auto) "
                    "decodes with kaldi-decoder instead"
                )
            self.k2_graph = k2_backend.load_k2_graph(k2_path)
            self.k2_options = options or SearchOptions()
        elif method != "ctc-greedy":
            self.search = GraphSearch(load_graph(Path(lang_dir) / f"{graph}.fst"), options)
        if method != "ctc-greedy":
            if graph != "H":
                self.words = {
                    i: w for w, i in read_token_table(Path(lang_dir) / "words.txt").items()
                }

    @property
    def name(self) -> str:
        """Directory name under ``decode/``: ``ctc-greedy``, ``1best-HLG``, ..."""
        return "ctc-greedy" if self.method == "ctc-greedy" else f"{self.method}-{self.graph_name}"

    def keys(self) -> list[str]:
        """The settings this decoder produces."""
        if self.method == "ctc-greedy":
            return ["greedy"]
        if self.method == "lm-rescore" or self.graph_name == "HLG":
            return [scale_key(s) for s in self.lm_scales]
        return ["no_lm"]

    def _to_words(self, olabels: list[int]) -> list[str]:
        if self.graph_name == "H":
            return self.tokenizer.decode(olabels).split()
        return [self.words[i] for i in olabels]

    def _k2_search_options(self) -> dict:
        """Our SearchOptions in k2's terms (beam, lattice beam, max-active)."""
        o = self.k2_options
        return dict(search_beam=o.beam, output_beam=o.lattice_beam, max_active_states=o.max_active)

    def _one_best(self, log_probs: np.ndarray, lm_scale: float) -> list[int]:
        """Output labels of the best path at one LM scale, from k2 or kaldi-decoder."""
        if self.k2_graph is not None:
            return k2_backend.one_best(
                self.k2_graph,
                torch.from_numpy(log_probs)[None],
                torch.tensor([len(log_probs)]),
                lm_scale=lm_scale,
                **self._k2_search_options(),
            )[0]
        assert self.search is not None
        # one max-active-bounded search per scale: LatticeSimpleDecoder has no max-active,
        # and on the flat posteriors of a weak model its lattice can take minutes per second
        return self.search.best_path(log_probs, lm_scale)

    def _lattice(self, log_probs: np.ndarray):
        """The raw lattice at LM scale 1, from k2's pruned intersection or our search."""
        if self.k2_graph is None:
            assert self.search is not None
            return self.search.lattice(log_probs)
        return k2_backend.lattice(
            self.k2_graph, torch.from_numpy(log_probs), **self._k2_search_options()
        )

    def decode(self, log_probs: np.ndarray) -> dict[str, list[str]]:
        """Words of one utterance for every key; ``log_probs`` is ``(T, V)`` float32."""
        if log_probs.ndim != 2 or log_probs.shape[1] != self.tokenizer.vocab_size:
            raise ValueError(
                f"log-probs of shape {log_probs.shape} do not match the lang dir's "
                f"{self.tokenizer.vocab_size} units"
            )
        if self.method == "ctc-greedy":
            ids = ctc_greedy_search(torch.from_numpy(log_probs)[None])[0]
            return {"greedy": self.tokenizer.decode(ids).split()}
        if self.method == "1best":
            olabels = [self._one_best(log_probs, s) for s in self.lm_scales]
        elif self.method == "nbest":
            olabels = nbest_decoding(self._lattice(log_probs), self.num_paths, self.lm_scales)
        else:
            assert self.rescorer is not None
            rescorer = self.rescorer
            olabels = rescore_nbest(
                self._lattice(log_probs),
                self.num_paths,
                self.lm_scales,
                lambda labels: rescorer.cost(self._to_words(labels)),
            )
        return {k: self._to_words(o) for k, o in zip(self.keys(), olabels, strict=True)}
