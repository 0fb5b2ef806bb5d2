"""Export a fine-tuned CTC model of an experiment directory for use outside the recipe.

    python -m hourglass_w2v2.bin.export --exp-dir exp/NAME --format onnx --out DIR [--int8]
    python -m hourglass_w2v2.bin.export --exp-dir exp/NAME --format onnx --out DIR --int8 \
        --verify data/manifests/synth_cuts_test-clean.jsonl.gz
    python -m hourglass_w2v2.bin.export --exp-dir exp/NAME --format hf --out DIR

``onnx`` writes ``model.onnx`` (``model.int8.onnx`` with ``--int8``), ``tokens.txt``,
``words.txt``, the lang dir's ``H``/``HL``/``HLG.fst`` and a README with the sherpa-onnx calls
that decode with them. ``hf`` writes a ``transformers`` ``Wav2Vec2ForCTC`` folder (vanilla
models only). ``--verify`` decodes a test set (cut set file or LibriSpeech-layout folder)
with PyTorch and with the exported folder (onnxruntime, sherpa-onnx greedy and HLG, fp32 and
int8), prints the WERs and agreement, and exits with status 1 when the export is not faithful
(:data:`hourglass_w2v2.decoding.export_check.TOLERANCES`). Errors name the file or setting at
fault and exit with status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from hourglass_w2v2.bin._common import add_model_options
from hourglass_w2v2.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    input_normalized,
    load_experiment_ctc_model,
)
from hourglass_w2v2.export import ExportError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_options(p)
    p.add_argument("--format", required=True, choices=["onnx", "hf"])
    p.add_argument("--out", required=True, type=Path, help="folder to write")
    p.add_argument("--int8", action="store_true", help="onnx: also write model.int8.onnx")
    p.add_argument(
        "--allow-sherpa-mismatch",
        action="store_true",
        help="onnx: export a model sherpa-onnx's input normalisation would change",
    )
    p.add_argument(
        "--verify",
        metavar="[NAME=]CUTS",
        help="onnx: decode this test set with PyTorch and the export and compare (see above)",
    )
    return p


def load(args: argparse.Namespace) -> tuple:
    """``(model, checkpoint, checkpoint path, tokenizer)`` of the experiment ``args`` name."""
    return load_experiment_ctc_model(
        args.exp_dir, args.checkpoint, args.lang_dir, torch.device("cpu")
    )


def verify(args: argparse.Namespace, loaded: tuple) -> list[str]:
    """Compare the exported folder with the PyTorch model (:func:`load`) on ``args.verify``;
    print the report and return the tolerances it misses."""
    from hourglass_w2v2.decoding.export_check import check, verify_export
    from hourglass_w2v2.decoding.runner import open_test_set

    model, ckpt, _, tokenizer = loaded
    test_set = open_test_set(args.verify)
    report = verify_export(
        model, input_normalized(ckpt), args.out, tokenizer.lang_dir, test_set.cuts
    )
    print(f"{test_set.name}: {report.table()}")
    return check(report)


def export(args: argparse.Namespace, loaded: tuple) -> list[Path]:
    """Export the model the parsed ``args`` name (:func:`load`); return the files written."""
    model, ckpt, ckpt_path, tokenizer = loaded
    lang_dir = tokenizer.lang_dir
    normalize = input_normalized(ckpt)
    if args.format == "onnx":
        from hourglass_w2v2.export.onnx import export_onnx_folder

        meta = {"checkpoint": ckpt_path.name, "update": str(ckpt.get("update"))}
        return export_onnx_folder(
            model,
            normalize,
            lang_dir,
            args.out,
            args.exp_dir,
            args.int8,
            args.allow_sherpa_mismatch,
            meta,
        )
    from hourglass_w2v2.export.hf import export_hf

    return export_hf(model, tokenizer, normalize, args.out, source=str(ckpt_path))


def main(argv: list[str] | None = None) -> None:
    """Run the export CLI; bad input exits with status 1 and a message naming what is wrong."""
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.verify and args.format != "onnx":
        parser.error("--verify checks an ONNX export: use it with --format onnx")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        loaded = load(args)
        files = export(args, loaded)
    except (ExportError, CheckpointError, CheckpointMismatchError, FileNotFoundError) as e:
        raise SystemExit(f"export: error: {e}") from None
    for path in files:
        print(path)
    if args.verify:
        try:
            problems = verify(args, loaded)
        except (FileNotFoundError, ValueError) as e:  # DecodeInputError is a ValueError
            raise SystemExit(f"export: --verify: error: {e}") from None
        if problems:
            raise SystemExit("export: the export is not faithful:\n  " + "\n  ".join(problems))
        print("the export decodes as PyTorch does, within the tolerances")


if __name__ == "__main__":
    sys.exit(main())
