"""bin/transcribe: any format, rate, channel count and length; bad files named, exit status."""

import importlib.util
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from random_ctc import save_random_ctc_checkpoint

from hourglass_w2v2.bin import transcribe as transcribe_cli
from hourglass_w2v2.checkpoint import load_ctc_model
from hourglass_w2v2.decoding.methods import Decoder
from hourglass_w2v2.decoding.search import SearchOptions
from hourglass_w2v2.decoding.transcribe import (
    FRAME_SHIFT,
    RECEPTIVE_FIELD,
    Transcriber,
    audio_blocks,
    iter_windows,
    word_times,
)
from hourglass_w2v2.lang.tokenizer import Tokenizer

_spec = importlib.util.spec_from_file_location(
    "lang_conftest", Path(__file__).parents[1] / "lang" / "conftest.py"
)
_lang_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_lang_conftest)
toy_lang = _lang_conftest.toy_lang


def save_ctc_checkpoint(path: Path, lang_dir: Path, preset: str = "tiny", **overrides) -> Path:
    """A random CTC checkpoint trained, as it were, without input normalisation."""
    return save_random_ctc_checkpoint(path, lang_dir, preset, normalize=False, **overrides)


@pytest.fixture(scope="module")
def exp(tmp_path_factory, toy_lang):
    exp = tmp_path_factory.mktemp("exp")
    save_ctc_checkpoint(exp / "checkpoints" / "ckpt-1.pt", toy_lang)
    return exp


def speech_like(seconds: float, seed: int = 0, rate: int = 16000) -> np.ndarray:
    """Noise bursts with pauses, so a random model emits a varied unit sequence."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    envelope = (np.sin(np.arange(n) / rate * 2 * np.pi * 1.7) > -0.3).astype(np.float32)
    return (0.1 * rng.standard_normal(n) * envelope).astype(np.float32)


def test_word_times_from_a_frame_alignment():
    tokens = ["<blk>", "▁", "A", "B", "▁C"]
    # frames: ▁ A A blank A ▁C ▁C blank B
    frames = np.array([1, 2, 2, 0, 2, 4, 4, 0, 3])
    words = word_times(frames, tokens)
    assert [w.word for w in words] == ["AA", "CB"]
    assert [(w.start, w.end) for w in words] == [
        pytest.approx((0.0, 0.1)),
        pytest.approx((0.1, 0.18)),
    ]


def frame_sums(samples: np.ndarray) -> np.ndarray:
    """A stand-in model with the extractor's framing: one value per 400-sample frame."""
    n = (len(samples) - RECEPTIVE_FIELD) // FRAME_SHIFT + 1
    return np.array(
        [
            samples[i * FRAME_SHIFT : i * FRAME_SHIFT + RECEPTIVE_FIELD].sum()
            for i in range(max(n, 0))
        ]
    )


@pytest.mark.parametrize("length", [399, 400, 5000, 12_800, 12_800 + 640, 33_333])
def test_windows_keep_each_frame_of_the_whole_file_once(length):
    x = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    blocks = [x[i : i + 777] for i in range(0, length, 777)]
    kept = []
    for samples, first, count in iter_windows(blocks, window=3200, context=640):
        assert len(samples) <= 3200 + 2 * 640
        out = frame_sums(samples)
        kept.append(out[first:] if count is None else out[first : first + count])
    got = np.concatenate(kept) if kept else np.zeros(0)
    np.testing.assert_allclose(got, frame_sums(x), rtol=1e-6, atol=1e-5)


def test_short_file_is_the_utterance_level_forward_pass(tmp_path, exp, toy_lang):
    audio = speech_like(3.0)
    sf.write(tmp_path / "a.wav", audio, 16000, subtype="FLOAT")
    tok = Tokenizer(toy_lang)
    model, _ = load_ctc_model(exp / "checkpoints" / "ckpt-1.pt", tok, torch.device("cpu"))
    t = Transcriber(model, tok, normalize=False)
    lp, seconds = t.file_log_probs(tmp_path / "a.wav")
    with torch.no_grad():
        ref = model(torch.from_numpy(audio)[None]).logits.log_softmax(-1)[0].numpy()
    assert seconds == pytest.approx(3.0)
    np.testing.assert_allclose(lp, ref, atol=1e-5)
    words = Decoder("ctc-greedy", toy_lang).decode(ref)["greedy"]
    assert words, "the test model should emit some words"
    assert t.transcribe(tmp_path / "a.wav").text == " ".join(words)


def test_long_file_in_windows_matches_the_whole_file_on_most_frames(tmp_path, exp, toy_lang):
    audio = speech_like(12.0, seed=3)
    sf.write(tmp_path / "long.flac", audio, 16000)
    tok = Tokenizer(toy_lang)
    model, _ = load_ctc_model(exp / "checkpoints" / "ckpt-1.pt", tok, torch.device("cpu"))
    whole = Transcriber(model, tok, normalize=False, window=60.0).file_log_probs(
        tmp_path / "long.flac"
    )[0]
    windowed = Transcriber(model, tok, normalize=False, window=4.0, context=2.0)
    lp = windowed.file_log_probs(tmp_path / "long.flac")[0]
    assert lp.shape == whole.shape == ((len(audio) - 400) // 320 + 1, tok.vocab_size)
    # attention sees 2 s of context instead of the whole file; this random model attends
    # almost uniformly over everything it sees, so it is more sensitive to that than a trained one
    assert (lp.argmax(-1) == whole.argmax(-1)).mean() > 0.85


def test_formats_rates_and_channels(tmp_path):
    audio = speech_like(1.5)
    sf.write(tmp_path / "mono.wav", audio, 16000)
    sf.write(tmp_path / "stereo.flac", np.stack([audio, audio], axis=1), 16000)
    sf.write(tmp_path / "quiet_right.wav", np.stack([audio, 0 * audio], axis=1), 16000)
    sf.write(tmp_path / "rate44k.wav", speech_like(1.5, rate=44100), 44100)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(tmp_path / "mono.wav"), str(tmp_path / "a.mp3")],
        check=True,
    )

    def read(name):
        return np.concatenate(list(audio_blocks(tmp_path / name)))

    np.testing.assert_allclose(read("stereo.flac"), read("mono.wav"), atol=1e-4)  # 16-bit LSBs
    np.testing.assert_allclose(read("quiet_right.wav"), audio / 2, atol=1e-4)
    assert abs(len(read("rate44k.wav")) - 24000) <= 2
    mp3 = read("a.mp3")  # mp3 adds encoder delay and padding
    assert 24000 <= len(mp3) <= 24000 + 3000


def run_cli(capsys, *args):
    try:
        status = transcribe_cli.main([str(a) for a in args])
    except SystemExit as e:
        status = e.code
    out = capsys.readouterr()
    return status, out.out, out.err


def test_cli_prints_each_file_and_names_bad_ones(tmp_path, exp, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "a.wav", speech_like(1.0, 1), 16000)
    sf.write(folder / "b.ogg", speech_like(1.2, 2, rate=22050), 22050)
    (folder / "c_corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    (folder / "d_empty.flac").write_bytes(b"")
    status, out, err = run_cli(capsys, "--exp-dir", exp, folder, tmp_path / "missing.wav")
    assert status == 1
    lines = dict(line.split("\t") for line in out.splitlines())
    assert sorted(lines) == [str(folder / "a.wav"), str(folder / "b.ogg")]
    assert f"{folder / 'c_corrupt.wav'}: cannot read audio" in err
    assert f"{folder / 'd_empty.flac'}: empty file (0 bytes)" in err
    assert f"{tmp_path / 'missing.wav'}: no such file" in err
    assert "3 of 5 file(s) could not be read" in err

    status, out, err = run_cli(capsys, "--exp-dir", exp, "--json", folder / "a.wav")
    assert status == 0, err
    record = json.loads(out)
    assert record["file"] == str(folder / "a.wav") and record["duration"] == 1.0
    assert [w["word"] for w in record["words"]] == record["text"].split()
    times = [(w["start"], w["end"]) for w in record["words"]]
    assert all(0 <= s < e <= 1.0 for s, e in times)
    assert all(e1 <= s2 for (_, e1), (s2, _) in zip(times, times[1:], strict=False))


def test_cli_bad_exp_dir_exits_2(tmp_path, capsys):
    status, _, err = run_cli(capsys, "--exp-dir", tmp_path / "nope", tmp_path / "a.wav")
    assert status == 2
    assert "no checkpoint in" in err


def test_1best_words_equal_bin_decode(tmp_path, exp, toy_lang):
    audio = speech_like(2.0, seed=5)
    sf.write(tmp_path / "a.wav", audio, 16000, subtype="FLOAT")
    tok = Tokenizer(toy_lang)
    model, _ = load_ctc_model(exp / "checkpoints" / "ckpt-1.pt", tok, torch.device("cpu"))
    t = Transcriber(model, tok, normalize=False, method="1best", graph="HLG")
    result = t.transcribe(tmp_path / "a.wav")
    with torch.no_grad():
        ref = model(torch.from_numpy(audio)[None]).logits.log_softmax(-1)[0].numpy()
    decoder = Decoder("1best", toy_lang, "HLG", SearchOptions(), [1.0], backend="kaldi")
    assert result.text.split() == decoder.decode(ref)["lm_scale_1"]
    assert [w.word for w in result.words] == result.text.split()


def test_model_of_exp_dir_reads_the_checkpoint_once(exp, toy_lang, monkeypatch):
    """Without --lang-dir the recorded lang dir is used, and the file is loaded only once."""
    import hourglass_w2v2.checkpoint as checkpoint

    loads = []
    real = checkpoint.load_torch_file
    monkeypatch.setattr(
        checkpoint, "load_torch_file", lambda path, *a: loads.append(path) or real(path, *a)
    )
    args = transcribe_cli.get_parser().parse_args(["--exp-dir", str(exp), "x.wav"])
    transcriber = transcribe_cli._transcriber(args)
    assert transcriber.tokenizer.lang_dir == Path(toy_lang)
    assert loads == [exp / "checkpoints" / "ckpt-1.pt"]
