"""Decode test sets with a fine-tuned CTC model and score them (run.sh stage 3).

    python -m hourglass_w2v2.bin.decode --exp-dir exp/NAME --lang-dir data/lang_char \\
        --method ctc-greedy 1best --graph HLG --test-sets test-clean test-other

Writes ``exp/NAME/decode/<method>/{recogs,errs,wer-summary,cer-summary,rtf}-...`` and a
``log-decode-<datetime>`` per method. ``--cuts [NAME=]PATH`` adds any lhotse cut set or
LibriSpeech-layout folder as a test set named NAME or after the file; a name that a recipe test
set or another ``--cuts`` has is refused. A folder's transcripts are normalised as the recipe's
(upper case, no punctuation). Unreadable audio or a transcript line without audio stops the
run naming the file; ``--skip-bad`` decodes the rest and lists what was left out in
``skipped-<test>.txt``. ``1best``/``nbest`` over ``HLG`` sweep ``--lm-scales`` (keys
``lm_scale_<s>``); ``lm-rescore`` rescores the n-best list with ``--rescore-lm`` (the 4-gram).
Bad input exits with status 1 and a message naming the file.
"""

from __future__ import annotations

import argparse
import datetime
import logging
from pathlib import Path

import torch

from hourglass_w2v2.bin._common import setup_logging
from hourglass_w2v2.checkpoint import (
    CheckpointMismatchError,
    input_normalized,
    load_ctc_model,
    resolve_checkpoint,
)
from hourglass_w2v2.decoding.methods import GRAPHS, METHODS, Decoder
from hourglass_w2v2.decoding.runner import (
    DecodeInputError,
    check_test_set_names,
    decode_test_set,
    open_test_set,
    recipe_test_set,
)
from hourglass_w2v2.decoding.search import SearchOptions
from hourglass_w2v2.lang.tokenizer import Tokenizer


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--exp-dir", required=True, type=Path, help="experiment directory")
    p.add_argument("--lang-dir", required=True, type=Path, help="data/lang_char or data/lang_bpe_N")
    p.add_argument("--method", nargs="+", default=["ctc-greedy"], choices=METHODS)
    p.add_argument(
        "--graph",
        nargs="+",
        default=["HLG"],
        choices=GRAPHS,
        help="graphs searched by 1best/nbest/lm-rescore",
    )
    p.add_argument("--test-sets", nargs="*", default=[], help="recipe test sets, e.g. test-clean")
    p.add_argument("--manifest-dir", type=Path, default=Path("data/manifests"))
    p.add_argument("--corpus", default="synth", help="synth | librispeech")
    p.add_argument(
        "--cuts",
        nargs="*",
        default=[],
        metavar="[NAME=]PATH",
        help="extra test sets: lhotse cut set files or LibriSpeech-layout folders, named NAME or "
        "after the file/folder (which must not be a recipe test set's name)",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out utterances with unreadable audio or no audio file, list them in "
        "decode/<method>/skipped-<test>.txt and score the rest",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="default: averaged.pt, best.pt, else the newest ckpt-*.pt",
    )
    p.add_argument("--beam", type=float, default=16.0, help="search beam (log-prob units)")
    p.add_argument("--max-active", type=int, default=1000)
    p.add_argument("--lattice-beam", type=float, default=8.0)
    p.add_argument("--lm-scales", type=float, nargs="+", default=[0.6, 0.8, 1.0, 1.2, 1.5])
    p.add_argument(
        "--num-paths",
        type=int,
        default=50,
        help="paths drawn from each lattice for nbest/lm-rescore",
    )
    p.add_argument("--rescore-lm", type=Path, default=None, help="ARPA LM for lm-rescore")
    p.add_argument(
        "--max-duration",
        type=float,
        default=60.0,
        help="seconds of padded audio per acoustic-model batch",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "kaldi", "k2"],
        help="graph search: kaldi-decoder/ours or k2 (auto = k2 for 1best when it imports and the "
        "lang dir has <graph>.pt; k2 for nbest/lm-rescore only when asked)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    return p


def main(argv: list[str] | None = None) -> None:
    """Run the decode CLI; bad input exits with status 1 and a message naming the file."""
    args = get_parser().parse_args(argv)
    setup_logging()
    if not args.test_sets and not args.cuts:
        raise SystemExit("nothing to decode: give --test-sets and/or --cuts")
    try:
        decode(args)
    except (DecodeInputError, CheckpointMismatchError, FileNotFoundError) as e:
        # into each method's log-decode-* too; the terminal gets it once, from SystemExit
        record = logging.makeLogRecord({"msg": str(e), "levelno": logging.ERROR})
        record.levelname = "ERROR"
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)
        raise SystemExit(f"decode: error: {e}") from None


def decode(args: argparse.Namespace) -> None:
    """Decode every test set of parsed ``args`` with every requested method."""
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    ckpt_path = resolve_checkpoint(args.exp_dir, args.checkpoint)
    tokenizer = Tokenizer(args.lang_dir)
    model, ckpt = load_ctc_model(ckpt_path, tokenizer, device)
    normalize = input_normalized(ckpt)
    # which checkpoint made the numbers: each summary ends with it, the results table reads it
    record = {"checkpoint": str(ckpt_path), "update": ckpt.get("update")}
    if ckpt.get("averaged_from"):
        record["averaged from"] = " ".join(Path(p).name for p in ckpt["averaged_from"])

    # read and check every test set before decoding any, so a bad name fails fast
    recipe = [recipe_test_set(args.manifest_dir, args.corpus, n) for n in args.test_sets]
    external = [open_test_set(p, args.skip_bad) for p in args.cuts]
    check_test_set_names(recipe, external, args.manifest_dir, args.corpus)

    options = SearchOptions(
        beam=args.beam, max_active=args.max_active, lattice_beam=args.lattice_beam
    )
    decoders = []
    for method in args.method:
        for graph in ["H"] if method == "ctc-greedy" else args.graph:
            decoders.append(
                Decoder(
                    method,
                    args.lang_dir,
                    graph,
                    options,
                    args.lm_scales,
                    args.num_paths,
                    args.rescore_lm,
                    args.backend,
                )
            )
    decode_dir = args.exp_dir / "decode"
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
    for d in decoders:
        (decode_dir / d.name).mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(decode_dir / d.name / f"log-decode-{stamp}")
        handler.setFormatter(logging.getLogger().handlers[0].formatter)
        logging.getLogger().addHandler(handler)
    logging.info("decoding %s with %s on %s", ckpt_path, [d.name for d in decoders], device)

    for test_set in recipe + external:
        decode_test_set(
            model,
            test_set,
            decoders,
            decode_dir,
            args.max_duration,
            normalize,
            device,
            skip_bad=args.skip_bad,
            record=record,
        )


if __name__ == "__main__":
    main()
