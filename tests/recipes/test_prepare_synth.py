"""egs/synth/SSL/prepare.sh stages 0-3 end to end at the tiny size (slow: ~30 s)."""

import re

import pytest
from lhotse import load_manifest

PARTS = ["train-clean-100", "dev-clean", "test-clean", "test-other",
         "train-10min", "train-1h", "train-10h"]


@pytest.mark.slow
def test_tiny_synth_recipe_stages_0_to_3(tmp_path, recipe):
    work = recipe.make(tmp_path, "synth")
    out = recipe.run(work, "--stage", "0", "--stop-stage", "3", "--size", "tiny")
    assert out.returncode == 0, out.stderr
    log = out.stderr
    assert re.search(r"vocabulary \d+ words \(grammar \d+\).*3-gram [\d.]+, 1-gram [\d.]+", log)
    root = work / "download/LibriSpeech"
    for part in PARTS:
        cuts = load_manifest(work / f"data/manifests/synth_cuts_{part}.jsonl.gz")
        assert len(cuts) > 0 and all(c.sampling_rate == 16000 for c in cuts)
        texts = {c.id: c.supervisions[0].text for c in cuts}
        if part in PARTS[:4]:
            lines = [line.split(" ", 1) for t in (root / part).rglob("*.trans.txt")
                     for line in t.read_text().splitlines()]
            assert texts == dict(lines)
    pool = {c.supervisions[0].speaker for c in load_manifest(
        work / "data/manifests/synth_cuts_train-10h.jsonl.gz")}
    for test in ("dev-clean", "test-clean", "test-other"):
        speakers = {c.supervisions[0].speaker for c in load_manifest(
            work / f"data/manifests/synth_cuts_{test}.jsonl.gz")}
        assert not speakers & pool
    rerun = recipe.run(work, "--stage", "0", "--stop-stage", "3", "--size", "tiny")
    assert rerun.stderr.count("skipping") == 4
