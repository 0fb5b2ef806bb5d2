"""Decode test sets with a fine-tuned CTC checkpoint and write scored results (run.sh stage 3).

The acoustic model runs once per batch of cuts (sorted by duration, padded up to
``max_duration`` seconds of audio); every requested method then searches the same log-probs.
Per test set and method this writes, under ``<exp>/decode/<method>/``, icefall's ``recogs-``,
``errs-``, ``wer-summary-`` and ``cer-summary-`` files plus ``rtf-<test>.json`` (audio seconds,
model and search seconds, real-time factor). A test set's files are written only after all of
it is decoded, each atomically, so an interrupted run leaves no partial results and a rerun
completes them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet, Recording, SupervisionSegment
from lhotse.cut import Cut
from tqdm import tqdm

from hourglass_w2v2.data.datasets import SAMPLE_RATE, CtcDataset, cut_set_path
from hourglass_w2v2.decoding.methods import Decoder
from hourglass_w2v2.lang.tokenizer import Tokenizer
from hourglass_w2v2.scoring import Result, write_atomic, write_results, write_summaries
from hourglass_w2v2.training.checkpoint import list_checkpoints, load_checkpoint


def resolve_checkpoint(exp_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """The checkpoint to decode: ``checkpoint`` if given, else ``averaged.pt``, ``best.pt``,
    the newest ``ckpt-*.pt`` of ``<exp_dir>/checkpoints``; a clear error when there is none."""
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        return path
    ckpt_dir = Path(exp_dir) / "checkpoints"
    for name in ("averaged.pt", "best.pt"):
        if (ckpt_dir / name).is_file():
            return ckpt_dir / name
    found = list_checkpoints(ckpt_dir)
    if not found:
        raise FileNotFoundError(
            f"no checkpoint in {ckpt_dir} (looked for averaged.pt, best.pt, ckpt-*.pt); "
            "fine-tune first (run.sh stage 2) or pass --checkpoint"
        )
    return found[-1][1]


def load_ctc_model(
    ckpt_path: str | Path, tokenizer: Tokenizer, device: torch.device
) -> tuple[torch.nn.Module, dict]:
    """Build the CTC model of a fine-tuning checkpoint and check it against the lang dir.

    The lang dir's unit count must equal the CTC head's output size, else the error names both
    (and the lang dir the model was trained with), since decoding with the wrong units would
    silently produce garbage.
    """
    from hourglass_w2v2.models import ModelConfig, build_model

    ckpt = load_checkpoint(ckpt_path)
    if ckpt.get("task") != "ctc":
        raise ValueError(
            f"checkpoint {ckpt_path} is a {ckpt.get('task')!r} checkpoint, not a CTC one; "
            "decode a fine-tuned model"
        )
    head = ckpt["model"].get("ctc_head.weight")
    vocab_size = int(ckpt["vocab_size"]) if ckpt.get("vocab_size") else int(head.shape[0])
    if vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"lang dir {tokenizer.lang_dir} has {tokenizer.vocab_size} units but the CTC head of "
            f"{ckpt_path} has {vocab_size} outputs (it was trained with lang dir "
            f"{ckpt.get('lang_dir')}); pass the matching --lang-dir"
        )
    model = build_model(
        ModelConfig.from_dict(ckpt["model_config"]), task="ctc", vocab_size=vocab_size
    )
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    return model, ckpt


def librispeech_folder_cuts(folder: str | Path) -> CutSet:
    """Cuts of a folder in LibriSpeech layout (``*.trans.txt`` next to ``<utt>.flac``/``.wav``)."""
    folder = Path(folder)
    cuts = []
    for trans in sorted(folder.rglob("*.trans.txt")):
        for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            audio = next(
                (
                    trans.parent / f"{utt_id}{ext}"
                    for ext in (".flac", ".wav")
                    if (trans.parent / f"{utt_id}{ext}").is_file()
                ),
                None,
            )
            if audio is None:
                raise FileNotFoundError(f"{trans}:{lineno}: no audio file for {utt_id}")
            rec = Recording.from_file(audio, recording_id=utt_id)
            cut = rec.to_cut()
            cut.supervisions = [
                SupervisionSegment(
                    id=utt_id,
                    recording_id=utt_id,
                    start=0.0,
                    duration=rec.duration,
                    text=text.strip(),
                    speaker=utt_id.split("-")[0],
                )
            ]
            cuts.append(cut)
    if not cuts:
        raise ValueError(f"{folder} has no *.trans.txt files (expected LibriSpeech layout)")
    return CutSet.from_cuts(cuts)


def open_test_set(path: str | Path) -> tuple[str, CutSet]:
    """``(name, cuts)`` of a ``--cuts`` argument: a lhotse cut set file or a LibriSpeech folder.

    The name is the file name without ``.jsonl.gz`` (and without a ``<corpus>_cuts_`` prefix),
    or the folder name.
    """
    path = Path(path)
    if path.is_dir():
        return path.name, librispeech_folder_cuts(path)
    if not path.is_file():
        raise FileNotFoundError(f"--cuts {path} is neither a cut set file nor a folder")
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl", ".json.gz", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    name = name.split("_cuts_", 1)[-1]
    return name, CutSet.from_file(path)


def recipe_test_set(manifest_dir: str | Path, corpus: str, name: str) -> CutSet:
    """The cut set of a recipe test set; a missing file is an error naming it."""
    path = cut_set_path(manifest_dir, corpus, name)
    if not path.is_file():
        raise FileNotFoundError(f"test set {name}: {path} does not exist (run prepare.sh stage 3)")
    return CutSet.from_file(path)


def make_batches(cuts: list[Cut], max_duration: float) -> list[list[Cut]]:
    """Group cuts sorted by duration into batches of at most ``max_duration`` padded seconds."""
    cuts = sorted(cuts, key=lambda c: c.duration, reverse=True)
    batches: list[list[Cut]] = []
    for cut in cuts:
        # sorted longest first, so the first cut of a batch sets its padded length
        if batches and batches[-1][0].duration * (len(batches[-1]) + 1) <= max_duration:
            batches[-1].append(cut)
        else:
            batches.append([cut])
    return batches


@dataclass
class Timing:
    """Seconds spent per stage, for the real-time factor."""

    audio: float = 0.0
    model: float = 0.0
    search: dict[str, float] = field(default_factory=dict)


def iter_log_probs(
    model: torch.nn.Module,
    cuts: CutSet,
    max_duration: float,
    normalize: bool,
    device: torch.device,
    timing: Timing,
    desc: str = "",
) -> Iterator[tuple[str, str, np.ndarray]]:
    """Yield ``(cut_id, reference text, (T, V) log-probs)`` per cut, batched through the model."""
    cut_list = [c if c.sampling_rate == SAMPLE_RATE else c.resample(SAMPLE_RATE) for c in cuts]
    dataset = CtcDataset(encode=lambda text: [], normalize=normalize)
    for batch_cuts in tqdm(make_batches(cut_list, max_duration), desc=desc, unit="batch"):
        batch = dataset[CutSet.from_cuts(batch_cuts)]
        timing.audio += batch["num_samples"] / SAMPLE_RATE
        start = time.perf_counter()
        with torch.inference_mode():
            out = model(batch["waveforms"].to(device), batch["padding_mask"].to(device))
            log_probs = out.logits.float().log_softmax(dim=-1)
            if out.padding_mask is None:
                lengths = torch.full((log_probs.shape[0],), log_probs.shape[1])
            else:
                lengths = (~out.padding_mask).sum(dim=1)
            log_probs, lengths = log_probs.cpu().numpy(), lengths.cpu().tolist()
        timing.model += time.perf_counter() - start
        for i, (cut_id, text) in enumerate(zip(batch["cut_ids"], batch["texts"], strict=True)):
            yield cut_id, text, log_probs[i, : lengths[i]]


def decode_test_set(
    model: torch.nn.Module,
    cuts: CutSet,
    test_set: str,
    decoders: list[Decoder],
    decode_dir: str | Path,
    max_duration: float = 60.0,
    normalize: bool = False,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, float]]:
    """Decode one test set with every decoder and write its scored results.

    Returns ``{decoder name: {key: WER}}``.
    """
    timing = Timing()
    results: dict[str, dict[str, list[Result]]] = {
        d.name: {k: [] for k in d.keys()} for d in decoders
    }
    for cut_id, text, log_probs in iter_log_probs(
        model, cuts, max_duration, normalize, device, timing, desc=f"decode {test_set}"
    ):
        ref = text.split()
        for d in decoders:
            start = time.perf_counter()
            hyps = d.decode(log_probs)
            timing.search[d.name] = timing.search.get(d.name, 0.0) + time.perf_counter() - start
            for key, words in hyps.items():
                results[d.name][key].append((cut_id, ref, words))
    if timing.audio == 0:
        raise ValueError(f"test set {test_set} has no cuts")
    summary = {}
    for d in decoders:
        out_dir = Path(decode_dir) / d.name
        wers, cers = {}, {}
        for key, res in results[d.name].items():
            wer, cer = write_results(out_dir, test_set, key, res)
            wers[key], cers[key] = wer.error_rate, cer.error_rate
        write_summaries(out_dir, test_set, wers, cers)
        search = timing.search.get(d.name, 0.0)
        rtf = {
            "audio_seconds": round(timing.audio, 3),
            "model_seconds": round(timing.model, 3),
            "search_seconds": round(search, 3),
            "rtf": round((timing.model + search) / timing.audio, 5),
            "search_rtf": round(search / timing.audio, 5),
            "device": str(device),
        }
        write_atomic(out_dir / f"rtf-{test_set}.json", json.dumps(rtf, indent=2) + "\n")
        logging.info(
            "[%s %s] best %s; RTF %.4f (model %.1f s + search %.1f s for %.1f s of audio)",
            d.name,
            test_set,
            min(wers.items(), key=lambda kv: kv[1]),
            rtf["rtf"],
            timing.model,
            search,
            timing.audio,
        )
        summary[d.name] = wers
    return summary
