"""Pretraining and CTC datasets over lhotse cuts, label-length filtering, corrupt audio."""

from __future__ import annotations

import pytest
import torch
from lhotse import CutSet

from hourglass_w2v2.data.datasets import (
    CorruptAudioError,
    CtcDataset,
    PretrainDataset,
    ctc_min_frames,
    filter_ctc_cuts,
    speed_perturbed,
)
from hourglass_w2v2.lang import Tokenizer
from hourglass_w2v2.training.config import DataConfig
from hourglass_w2v2.training.pretrain_task import train_cuts


def test_pretrain_batch_is_cropped_to_shortest(corpus):
    cuts = CutSet.from_file(corpus["train"]).subset(first=4)
    shortest = min(c.num_samples for c in cuts)
    ds = PretrainDataset(max_sample_size=250_000, seed=0)
    batch = ds[cuts]
    assert batch["waveforms"].shape == (4, shortest) and batch["padding_mask"] is None
    # every crop is a contiguous piece of its utterance
    for cut, crop in zip(cuts, batch["waveforms"], strict=True):
        full = torch.from_numpy(cut.load_audio()[0])
        starts = [
            s
            for s in range(full.numel() - shortest + 1)
            if torch.equal(full[s : s + shortest], crop)
        ]
        assert starts
    # reproducible (seeded by the batch's cut ids), capped at max_sample_size, normalised
    assert torch.equal(ds[cuts]["waveforms"], batch["waveforms"])
    capped = PretrainDataset(max_sample_size=4000, normalize=True, seed=0)[cuts]["waveforms"]
    assert capped.shape == (4, 4000)
    normed = PretrainDataset(max_sample_size=10**6, normalize=True)[cuts.subset(first=1)]
    assert normed["waveforms"].mean().abs() < 1e-4
    assert normed["waveforms"].std(unbiased=False) == pytest.approx(1.0, abs=1e-3)


def test_pretrain_crop_multiple_rounds_the_crop_down(corpus):
    cuts = CutSet.from_file(corpus["train"]).subset(first=4)
    shortest = min(c.num_samples for c in cuts)
    multiple = 4000
    assert shortest % multiple  # the corpus's shortest cut is not already a multiple
    batch = PretrainDataset(seed=0, crop_multiple=multiple)[cuts]
    assert batch["waveforms"].shape == (4, shortest // multiple * multiple)
    # a multiple longer than the shortest cut keeps the exact crop
    whole = PretrainDataset(seed=0, crop_multiple=shortest + 1)[cuts]
    assert whole["waveforms"].shape == (4, shortest)
    with pytest.raises(ValueError, match="crop_multiple must be >= 0"):
        PretrainDataset(crop_multiple=-1)


def test_pretrain_task_passes_crop_multiple_to_its_dataset(corpus):
    from hourglass_w2v2.training.config import ExperimentConfig
    from hourglass_w2v2.training.pretrain_task import PretrainTask

    cfg = ExperimentConfig(task="pretrain")
    cfg.data.train_cuts = cfg.data.valid_cuts = [str(corpus["train"])]
    cfg.data.crop_multiple = 8000
    dataset, _ = PretrainTask(cfg).train_data()
    assert dataset.crop_multiple == 8000


def test_ctc_batch_is_padded_with_mask(corpus):
    tok = Tokenizer(corpus["lang"])
    cuts = CutSet.from_file(corpus["train"]).subset(first=3)
    batch = CtcDataset(tok.encode)[cuts]
    lengths = [c.num_samples for c in cuts]
    assert batch["waveforms"].shape == (3, max(lengths))
    assert (~batch["padding_mask"]).sum(1).tolist() == lengths
    assert batch["waveforms"][batch["padding_mask"]].abs().sum() == 0
    texts = [c.supervisions[0].text for c in cuts]
    assert batch["texts"] == texts
    assert batch["target_lengths"].tolist() == [len(tok.encode(t)) for t in texts]
    assert tok.decode(batch["targets"][: batch["target_lengths"][0]].tolist()) == texts[0]


def test_ctc_min_frames_counts_repeats():
    assert ctc_min_frames([1, 2, 3]) == 3
    assert ctc_min_frames([1, 1, 2, 2, 2]) == 5 + 3
    assert ctc_min_frames([]) == 0


def test_too_long_labels_are_filtered_and_counted(corpus):
    tok = Tokenizer(corpus["lang"])
    cuts = CutSet.from_file(corpus["train"]).subset(first=6)
    cuts = CutSet.from_cuts([c if i % 2 else _relabel(c, "FACE " * 40) for i, c in enumerate(cuts)])
    # 320 samples per frame, like the wav2vec 2.0 extractor
    kept, dropped = filter_ctc_cuts(cuts, tok.encode, lambda n: (n - 80) // 320)
    kept = kept.to_eager()
    assert dropped == 3 and len(kept) == 3
    assert all("FACE FACE" not in c.supervisions[0].text for c in kept)


def _relabel(cut, text):
    cut = cut.to_dict()
    cut["supervisions"][0]["text"] = text.strip()
    from lhotse import MonoCut

    return MonoCut.from_dict(cut)


def test_corrupt_audio_names_the_cut(corpus, tmp_path):
    cuts = list(CutSet.from_file(corpus["train"]).subset(first=3))
    bad_file = tmp_path / "bad.flac"
    bad_file.write_bytes(b"not audio at all" * 100)
    bad = cuts[1].to_dict()
    bad["recording"]["sources"][0]["source"] = str(bad_file)
    from lhotse import MonoCut

    cuts[1] = MonoCut.from_dict(bad)
    cs = CutSet.from_cuts(cuts)
    with pytest.raises(CorruptAudioError, match=cuts[1].id):
        PretrainDataset()[cs]
    batch = PretrainDataset(skip_corrupt=True)[cs]
    assert batch["num_skipped"] == 1 and cuts[1].id not in batch["cut_ids"]
    tok = Tokenizer(corpus["lang"])
    with pytest.raises(CorruptAudioError, match=cuts[1].id):
        CtcDataset(tok.encode)[cs]
    assert CtcDataset(tok.encode, skip_corrupt=True)[cs]["waveforms"].shape[0] == 2


def test_speed_perturb_shifts_pitch_and_tempo_and_keeps_labels(tmp_path):
    import numpy as np
    import soundfile as sf
    from lhotse import Recording, SupervisionSegment

    sr, tone = 16000, 1000.0
    path = tmp_path / "tone.flac"
    sf.write(path, 0.5 * np.sin(2 * np.pi * tone * np.arange(sr) / sr), sr)
    rec = Recording.from_file(path, recording_id="tone")
    cut = rec.to_cut()
    cut.supervisions = [SupervisionSegment("tone", "tone", 0.0, rec.duration, text="A TONE")]
    cuts = CutSet.from_cuts([cut])
    cuts.to_file(tmp_path / "cuts.jsonl.gz")

    out = {c.id: c for c in speed_perturbed(cuts, [0.9, 1.1])}
    assert sorted(out) == ["tone", "tone_sp0.9", "tone_sp1.1"]
    for cid, factor in [("tone", 1.0), ("tone_sp0.9", 0.9), ("tone_sp1.1", 1.1)]:
        c = out[cid]
        audio = c.load_audio()[0]
        assert c.duration == pytest.approx(1.0 / factor, abs=1e-3)
        assert audio.size == c.num_samples == pytest.approx(sr / factor, abs=2)
        # played faster, the tone is higher: its spectral peak moves to tone * factor
        peak = np.argmax(np.abs(np.fft.rfft(audio))) * sr / audio.size
        assert peak == pytest.approx(tone * factor, abs=2.0)
        assert c.supervisions[0].text == "A TONE"

    # duration filters see the perturbed lengths: the 1.1 copy (0.91 s) is dropped
    d = DataConfig(
        train_cuts=[str(tmp_path / "cuts.jsonl.gz")],
        speed_perturb=[0.9, 1.1],
        min_duration=0.95,
        valid_parts=[],  # train_cuts also checks that the validation cut sets exist
    )
    assert [c.id for c in train_cuts(d)] == ["tone", "tone_sp0.9"]
    with pytest.raises(ValueError, match="speed_perturb"):
        speed_perturbed(cuts, [1.0])
