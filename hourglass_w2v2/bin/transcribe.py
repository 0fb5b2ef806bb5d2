"""Transcribe audio files with a fine-tuned CTC model of an experiment directory.

    python -m hourglass_w2v2.bin.transcribe --exp-dir exp/NAME [--lang-dir data/lang_char] \\
        [--method ctc-greedy|1best] [--json] FILE|DIR|@LIST ...

Reads any format soundfile or ffmpeg reads, at any sample rate (resampled to 16 kHz), mono or
multi-channel (channels averaged), of any length: long files go through the model in windows
of ``--window`` seconds with ``--context`` seconds of overlap on each side, so memory stays
bounded. Prints ``file<TAB>text`` per file, or with ``--json`` one JSON object per line with
the words and their start/end seconds from the CTC alignment. A file that cannot be read is
named on stderr and the others go on; the exit status is 1 when any file failed, 2 for a bad
experiment directory or lang dir, 0 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys

import torch
from tqdm import tqdm

from hourglass_w2v2.bin._common import add_model_options
from hourglass_w2v2.checkpoint import (
    CheckpointMismatchError,
    input_normalized,
    load_experiment_ctc_model,
)
from hourglass_w2v2.decoding.search import SearchOptions
from hourglass_w2v2.decoding.transcribe import AudioReadError, Transcriber, expand_inputs


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("inputs", nargs="+", help="audio files, folders, or @list files")
    add_model_options(p)
    p.add_argument("--method", default="ctc-greedy", choices=["ctc-greedy", "1best"])
    p.add_argument("--graph", default="HLG", choices=["H", "HL", "HLG"], help="for 1best")
    p.add_argument("--lm-scale", type=float, default=1.0, help="for 1best over HLG")
    p.add_argument("--beam", type=float, default=16.0)
    p.add_argument("--max-active", type=int, default=1000)
    p.add_argument("--window", type=float, default=30.0, help="seconds of kept frames per window")
    p.add_argument("--context", type=float, default=2.0, help="seconds of overlap on each side")
    p.add_argument("--json", action="store_true", help="one JSON object per file, word times")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    return p


def _transcriber(args: argparse.Namespace) -> Transcriber:
    """The model, units and search the arguments name."""
    model, ckpt, _, tokenizer = load_experiment_ctc_model(
        args.exp_dir, args.checkpoint, args.lang_dir, torch.device(args.device)
    )
    normalize = input_normalized(ckpt)
    options = SearchOptions(beam=args.beam, max_active=args.max_active)
    return Transcriber(
        model,
        tokenizer,
        normalize,
        args.method,
        args.graph,
        args.lm_scale,
        options,
        args.window,
        args.context,
        args.device,
    )


def _seconds(t: float) -> float | None:
    """Seconds rounded to 10 ms; None (JSON null) for a word without a time."""
    return None if math.isnan(t) else round(t, 2)


def main(argv: list[str] | None = None) -> int:
    """Transcribe every input; return (and exit with) 1 if any file failed, else 0."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        transcriber = _transcriber(args)
        files = expand_inputs(args.inputs)
    except (CheckpointMismatchError, FileNotFoundError, ValueError, OSError, RuntimeError) as e:
        print(f"transcribe: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    failed = 0
    bar = tqdm(files, unit="file", disable=len(files) < 2, file=sys.stderr)
    for path in bar:
        try:
            t = transcriber.transcribe(path)
        except AudioReadError as e:
            failed += 1
            tqdm.write(f"transcribe: error: {e}", file=sys.stderr)
            continue
        if args.json:
            record = {"file": t.path, "text": t.text, "duration": round(t.duration, 3)}
            record["words"] = [
                {**dataclasses.asdict(w), "start": _seconds(w.start), "end": _seconds(w.end)}
                for w in t.words
            ]
            line = json.dumps(record, ensure_ascii=False)
        else:
            line = f"{t.path}\t{t.text}"
        tqdm.write(line, file=sys.stdout)
    if failed:
        print(f"transcribe: {failed} of {len(files)} file(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
