"""The recipes' YAML configs: variants state only what differs from their parent (``base:``),
resolve to exactly the keys and values they are meant to differ in, and comment without figures
of single runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hourglass_w2v2.training.config import load_config

EGS = Path(__file__).resolve().parents[2] / "egs"
CONFIGS = sorted(EGS.glob("*/SSL/conf/*.yaml"))

# variant -> (parent named by its base:, {dotted key: value} where the two resolved configs differ)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "librispeech/SSL/conf/pretrain_base_hourglass.yaml": (
        "pretrain_base.yaml", {"model.preset": "base-hourglass"}),
    "librispeech/SSL/conf/finetune_base_1h.yaml": (
        "finetune_base_10min.yaml", {"data.train_parts": ["train-1h"]}),
    "librispeech/SSL/conf/finetune_base_10h.yaml": (
        "finetune_base_10min.yaml",
        {"data.train_parts": ["train-10h"], "model.mask_channel_prob": 0.5,
         "model.layerdrop": 0.05, "trainer.max_updates": 20000}),
    "librispeech/SSL/conf/finetune_base_100h.yaml": (
        "finetune_base_10min.yaml",
        {"data.train_parts": ["train-clean-100"], "model.mask_channel_prob": 0.5,
         "optim.lr": 3.0e-5, "trainer.max_updates": 80000, "ctc.freeze_encoder_updates": 0}),
    "synth/SSL/conf/pretrain_tiny_hourglass.yaml": (
        "pretrain_tiny.yaml", {"model.preset": "tiny-hourglass"}),
    "synth/SSL/conf/finetune_tiny_10min_large.yaml": (
        "finetune_tiny_10min.yaml",
        {"data.max_duration": 10.0, "trainer.max_updates": 2400, "trainer.valid_interval": 400,
         "ctc.freeze_feature_extractor": False}),
}


def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections as one dict of dotted keys."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_states_only_what_differs_from_its_base(variant):
    parent, differs = VARIANTS[variant]
    path = EGS / variant
    raw = yaml.safe_load(path.read_text())
    assert raw.pop("base") == parent
    assert flat(raw) == differs  # nothing restated from the parent
    mine = flat(load_config(path).to_dict())
    theirs = flat(load_config(path.parent / parent).to_dict())
    assert set(mine) == set(theirs)
    assert {k: v for k, v in mine.items() if theirs[k] != v} == differs


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parts[-4]}/{p.name}")
def test_comments_quote_no_figures_of_runs(path):
    comments = " ".join(line.split("#", 1)[1] for line in path.read_text().splitlines()
                        if "#" in line)
    figure = re.search(r"\b(CER|WER|loss|accuracy)\b[^.;]*?\d+\.\d+|\d+\.\d+ vs \d+\.\d+"
                       r"|\d+-\d+ minutes|by VM", comments)
    assert figure is None, f"{path.name}: {figure.group(0)!r}"
