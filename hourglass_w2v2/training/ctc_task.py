"""CTC fine-tuning as a :class:`~hourglass_w2v2.training.trainer.Task`.

The model starts from a pretraining checkpoint (``ctc.init``; quantizer and contrastive heads
dropped), from an imported fairseq / HF / torchaudio checkpoint, or from scratch
(``ctc.init_from_scratch``, the baseline). A pretrained feature extractor is frozen and a
pretrained encoder is frozen for the first ``ctc.freeze_encoder_updates`` updates (only the CTC
head learns); from scratch, everything trains from the start. Validation computes greedy
WER/CER, keeping ``best.pt`` at the lowest ``ctc.best_metric`` (WER by default; never an
all-blank model).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hourglass_w2v2.checkpoint import (
    average_checkpoints,
    list_checkpoints,
    load_checkpoint,
    load_torch_file,
)
from hourglass_w2v2.data.datasets import (
    CtcDataset,
    filter_ctc_cuts,
    make_eval_sampler,
)
from hourglass_w2v2.fileio import atomic_save
from hourglass_w2v2.greedy import ctc_greedy_search
from hourglass_w2v2.lang import Tokenizer
from hourglass_w2v2.models import ModelConfig, build_model
from hourglass_w2v2.scoring import error_counts
from hourglass_w2v2.training.config import ExperimentConfig
from hourglass_w2v2.training.pretrain_task import (
    model_config,
    train_cuts,
    train_sampler,
    valid_cuts,
)
from hourglass_w2v2.training.task import Task
from hourglass_w2v2.training.trainer import Trainer


def ctc_loss_and_stats(
    logits: torch.Tensor,
    lengths: torch.Tensor,
    padding_mask: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    blank_id: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean CTC loss per utterance (fp32) and the share of valid frames whose argmax is blank.

    ``zero_infinity`` stays off: labels too long for their audio are filtered out before
    training, so an inf here is a real fault for the trainer's non-finite check to catch.
    """
    log_probs = logits.float().log_softmax(-1)
    loss = (
        F.ctc_loss(
            log_probs.transpose(0, 1),
            targets,
            lengths,
            target_lengths,
            blank=blank_id,
            reduction="sum",
            zero_infinity=False,
        )
        / logits.shape[0]
    )
    with torch.no_grad():
        is_blank = (log_probs.argmax(-1) == blank_id) & ~padding_mask
        blank_share = is_blank.sum() / (~padding_mask).sum().clamp(min=1)
    return loss, blank_share


def finetune_model_config(pretrained: ModelConfig, cfg: ExperimentConfig) -> ModelConfig:
    """The fine-tuned model's config: the pretrained architecture with the fine-tuning config's
    ``model`` keys (masking, dropout, LayerDrop, ...) on top; ``preset`` names only the
    from-scratch architecture and is ignored here."""
    return pretrained.replace(**{k: v for k, v in cfg.model.items() if k != "preset"})


def load_backbone(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor], bool | None]:
    """``(ModelConfig, state_dict, data.normalize)`` of a model to fine-tune, from any supported
    checkpoint; the last is what our checkpoints record of their training (else None).

    - our checkpoint (``ckpt-N.pt``, ``best.pt``, ...): a dict with ``model_config``;
    - our experiment dir: its newest ``checkpoints/ckpt-N.pt`` (as ``run.sh --init`` picks it);
    - a fairseq / NVIDIA DeepLearningExamples checkpoint: a dict with ``cfg`` or ``args``;
    - an HF transformers model directory (``save_pretrained``: ``config.json`` + weights);
    - a whole torchaudio ``Wav2Vec2Model`` saved with ``torch.save(model, path)``.
    """
    from hourglass_w2v2 import convert

    path = Path(path)
    if path.is_dir() and not (path / "config.json").is_file():
        found = list_checkpoints(path / "checkpoints")
        if not found:
            raise FileNotFoundError(
                f"ctc.init: {path} is a directory with neither config.json (an HF model dir) "
                "nor checkpoints/ckpt-<update>.pt (an experiment dir)"
            )
        logging.info(
            "ctc.init: %s is an experiment dir; its newest checkpoint: %s", path, found[-1][1]
        )
        path = found[-1][1]
    if path.is_dir():
        import transformers

        # the class the weights were saved from (ForPreTraining keeps the quantizer)
        arch = transformers.AutoConfig.from_pretrained(path).architectures[0]
        model = convert.from_huggingface(getattr(transformers, arch).from_pretrained(path))
        return model.cfg, model.state_dict(), None
    if not path.is_file():
        raise FileNotFoundError(f"ctc.init: checkpoint {path} does not exist")
    ckpt = load_torch_file(path)  # a truncated or corrupt file: an error naming it
    if isinstance(ckpt, dict) and "model_config" in ckpt and "model" in ckpt:
        data = (ckpt.get("config") or {}).get("data") or {}
        normalize = bool(data["normalize"]) if "normalize" in data else None
        return ModelConfig.from_dict(ckpt["model_config"]), ckpt["model"], normalize
    if isinstance(ckpt, dict) and "model" in ckpt and ("cfg" in ckpt or "args" in ckpt):
        model = convert.from_fairseq(ckpt)
    elif isinstance(ckpt, nn.Module):
        model = convert.from_torchaudio(ckpt)
    else:
        raise ValueError(
            f"ctc.init: {path} is neither our checkpoint, a fairseq one, an HF model dir nor a "
            "saved torchaudio model"
        )
    return model.cfg, model.state_dict(), None


class CtcTask(Task):
    """Fine-tune a wav2vec 2.0 / hourglass backbone with a CTC head over ``ctc.lang_dir``."""

    name = "ctc"

    @property
    def best_metric(self) -> str:
        return self.cfg.ctc.best_metric

    def selection_score(self, metrics: dict[str, float]) -> float | None:
        # An all-blank model scores WER 100, which beats an early real model with insertions
        # (WER > 100): it must never become best.pt.
        if metrics.get("only_blanks"):
            return None
        return super().selection_score(metrics)

    def __init__(self, cfg: ExperimentConfig) -> None:
        c = cfg.ctc
        if c.init is None and not c.init_from_scratch:
            raise ValueError("fine-tuning needs ctc.init (--init CKPT) or ctc.init_from_scratch")
        if c.init is not None and c.init_from_scratch:
            raise ValueError("ctc.init and ctc.init_from_scratch exclude each other")
        if c.reset_top_layers and c.init is None:
            raise ValueError(
                "ctc.reset_top_layers re-initialises pretrained layers and needs ctc.init; "
                "a from-scratch model has nothing to reset"
            )
        if c.best_metric not in ("wer", "cer", "ctc_loss"):
            raise ValueError(f"ctc.best_metric must be wer, cer or ctc_loss, not {c.best_metric!r}")
        self.cfg = cfg
        self.tokenizer = Tokenizer(c.lang_dir)
        self.update = 0
        self._backbone_state = None
        self._valid_cuts = None
        self.model_cfg = self._resolve_model_config()

    def _resolve_model_config(self) -> ModelConfig:
        """Scratch: the config's preset + overrides. Init: the checkpoint's architecture with
        the config's fine-tuning keys (masking, dropout, LayerDrop, ...) on top."""
        init = self.cfg.ctc.init
        if init is None:
            return model_config(self.cfg)
        base, state, normalize = load_backbone(init)
        if normalize is not None and normalize != self.cfg.data.normalize:
            # fairseq asserts the same: the model only knows inputs scaled as in pretraining
            raise ValueError(
                f"ctc.init {init} was trained with data.normalize: {str(normalize).lower()} and "
                f"this fine-tuning has data.normalize: {str(self.cfg.data.normalize).lower()}; "
                "set data.normalize as in the pretraining"
            )
        # a fine-tuned checkpoint's CTC head has another vocabulary: the head starts afresh
        self._backbone_state = {k: v for k, v in state.items() if not k.startswith("ctc_head.")}
        return finetune_model_config(base, self.cfg)

    def build_model(self) -> nn.Module:
        model = build_model(self.model_cfg, task="ctc", vocab_size=self.tokenizer.vocab_size)
        if self._backbone_state is not None:
            missing, unexpected = model.load_backbone(self._backbone_state)
            if [k for k in missing if not k.startswith("ctc_head.")] or unexpected:
                raise ValueError(
                    f"ctc.init {self.cfg.ctc.init} does not match the model: missing "
                    f"{missing[:5]}, unexpected {unexpected[:5]}"
                )
            logging.info("initialised the backbone from %s", self.cfg.ctc.init)
            self._backbone_state = None  # free the memory
            if self.cfg.ctc.reset_top_layers:
                model.reset_top_layers(self.cfg.ctc.reset_top_layers)
                logging.info(
                    "re-initialised the last %d encoder layers", self.cfg.ctc.reset_top_layers
                )
        # Freezing random weights would only handicap the from-scratch baseline.
        if self.cfg.ctc.freeze_feature_extractor and self.cfg.ctc.init is not None:
            model.freeze_feature_extractor()
        self._output_lengths = model.output_lengths
        return model

    def _num_frames(self, num_samples: int) -> int:
        return int(self._output_lengths(torch.tensor([num_samples]))[0])

    def _cuts(self, train: bool):
        d = self.cfg.data
        cuts = train_cuts(d) if train else valid_cuts(d)
        cuts, dropped = filter_ctc_cuts(cuts, self.tokenizer.encode, self._num_frames)
        if dropped:
            logging.warning(
                "%s: dropped %d cuts whose label is too long for their audio",
                "train" if train else "valid",
                dropped,
            )
        return cuts

    def _dataset(self) -> CtcDataset:
        d = self.cfg.data
        return CtcDataset(self.tokenizer.encode, d.normalize, d.skip_corrupt)

    def train_data(self):
        return self._dataset(), train_sampler(self._cuts(train=True), self.cfg)

    def set_num_updates(self, model: nn.Module, update: int) -> None:
        self.update = update  # the encoder stays frozen for the first freeze_encoder_updates

    def compute_loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        c = self.cfg.ctc
        freeze = c.init is not None and self.update < c.freeze_encoder_updates
        out = model(batch["waveforms"], batch["padding_mask"], freeze_encoder=freeze)
        loss, blank_share = ctc_loss_and_stats(
            out.logits,
            out.lengths,
            out.padding_mask,
            batch["targets"],
            batch["target_lengths"],
            self.tokenizer.blank_id,
        )
        return loss, {"blank_share": blank_share, "sample_size": batch["waveforms"].shape[0]}

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Greedy WER/CER, CTC loss and blank share on the validation cuts."""
        d = self.cfg.data
        if self._valid_cuts is None:
            self._valid_cuts = self._cuts(train=False)
        sampler = make_eval_sampler(self._valid_cuts, d.valid_max_duration or d.max_duration)
        dataset = self._dataset()
        device = next(model.parameters()).device
        refs, hyps = [], []
        loss_sum = blank_frames = frames = 0.0
        for cuts in sampler:
            batch = dataset[cuts]
            out = model(batch["waveforms"].to(device), batch["padding_mask"].to(device))
            loss, share = ctc_loss_and_stats(
                out.logits,
                out.lengths,
                out.padding_mask,
                batch["targets"].to(device),
                batch["target_lengths"].to(device),
                self.tokenizer.blank_id,
            )
            n_frames = float(out.lengths.sum())
            loss_sum += float(loss) * len(batch["texts"])
            blank_frames += float(share) * n_frames
            frames += n_frames
            refs += batch["texts"]
            hyps += [self.tokenizer.decode(h) for h in ctc_greedy_search(out.logits, out.lengths)]
        if not refs:
            return {}
        e = error_counts(refs, hyps)
        blank_share = blank_frames / max(frames, 1.0)
        if blank_share >= self.cfg.ctc.only_blank_threshold or not any(h.strip() for h in hyps):
            logging.warning(
                "the model emits only blanks (blank share %.3f on validation): normal early in "
                "fine-tuning, a failure if it persists (lower the lr or unfreeze the encoder "
                "earlier)",
                blank_share,
            )
        for ref, hyp in list(zip(refs, hyps, strict=True))[:2]:
            logging.info("  ref: %s\n  hyp: %s", ref, hyp)
        return {
            "wer": 100.0 * e["word_errors"] / max(e["words"], 1),
            "cer": 100.0 * e["char_errors"] / max(e["chars"], 1),
            "ctc_loss": loss_sum / len(refs),
            "blank_share": blank_share,
            "only_blanks": float(not any(h.strip() for h in hyps)),
        }

    def checkpoint_fields(self) -> dict:
        return {
            "task": "ctc",
            "vocab_size": self.tokenizer.vocab_size,
            "lang_dir": str(self.cfg.ctc.lang_dir),
            # the units by id, so decoding can refuse a lang dir that orders them differently
            "tokens": list(self.tokenizer.id2token),
        }

    def init_description(self) -> str:
        return "scratch" if self.cfg.ctc.init is None else str(self.cfg.ctc.init)

    def on_train_end(self, trainer: Trainer) -> None:
        n = self.cfg.ctc.average_last
        if n > 0:
            average_last_checkpoints(trainer.ckpt_dir, n)


def average_last_checkpoints(ckpt_dir: str | Path, n: int) -> Path:
    """Average the newest ``n`` ``ckpt-*.pt`` into ``averaged.pt`` (fewer if fewer exist)."""
    paths = [p for _, p in list_checkpoints(ckpt_dir)][-n:]
    if not paths:
        raise FileNotFoundError(f"no checkpoints to average in {ckpt_dir}")
    if len(paths) < n:
        logging.warning(
            "averaging %d checkpoints, not %d: only that many are kept (raise trainer.keep_last)",
            len(paths),
            n,
        )
    avg = average_checkpoints(paths)
    out = Path(ckpt_dir) / "averaged.pt"
    atomic_save(avg, out)
    logging.info("averaged %s -> %s", ", ".join(p.name for p in paths), out)
    load_checkpoint(out)  # fail now, not at decode time, if it cannot be read back
    return out
