"""Detects the known ways wav2vec 2.0 pretraining fails, from the per-update metrics.

- **codebook collapse**: the code perplexity per group (how many codebook entries are really
  used) falls towards 1, so the quantized targets carry no information;
- **degenerate solution**: contrastive accuracy -> 1 with loss -> 0, which means the task became
  trivial (e.g. negatives are distinguishable from positives by padding or position);
- **stall**: the contrastive loss stays near ``log(K + 1)``, chance for K distractors, long
  after warmup: the model learns nothing;
- **dead extractor**: the feature penalty (mean square of the extractor's output) falls to ~0,
  far below the LayerNorm eps after it; the normalised features, the quantizer's logits and so
  the targets are then constant. The Gumbel noise keeps the training code perplexity looking
  healthy and the loss sits at chance, while validation (no noise) reads loss 0 / accuracy 1;
  seen at lr 2e-3 on the large synth corpus (``egs/synth/SSL/RESULTS.md``);
- **grad-norm outliers**: a gradient norm far above its running median (a spike that often
  precedes divergence).

Each finding is returned as a :class:`HealthEvent`; the trainer logs it, writes
``health/<kind>`` to tensorboard, and stops when ``health.stop_on_failure`` is set (outliers
only warn). A lasting failure is reported when it starts and then every ``health.report_every``
updates while it lasts, not at every update.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

from hourglass_w2v2.training.config import HealthConfig


@dataclass
class HealthEvent:
    """One finding; ``kind``: collapse | degenerate | stall | dead_extractor | grad_norm_outlier."""

    kind: str
    message: str
    fatal: bool


class HealthMonitor:
    """Keeps short windows of the pretraining metrics and judges them each update."""

    _WINDOWS = ("loss", "accuracy", "perplexity", "grad_norm", "feature_penalty")

    def __init__(self, cfg: HealthConfig, num_negatives: int, num_groups: int,
                 codebook_init: str = "uniform") -> None:
        self.cfg = cfg
        self.chance_loss = math.log(num_negatives + 1)
        self.num_groups = num_groups
        self.codebook_init = codebook_init
        self.reported: dict[str, int] = {}  # lasting failure kind -> update last reported
        self.loss = deque(maxlen=cfg.window)
        self.accuracy = deque(maxlen=cfg.window)
        self.perplexity = deque(maxlen=cfg.window)
        self.grad_norm = deque(maxlen=max(cfg.window, 20))
        self.feature_penalty = deque(maxlen=cfg.window)
        self.stalled_for = 0

    def state_dict(self) -> dict:
        return {k: list(getattr(self, k)) for k in self._WINDOWS} | {
            "stalled_for": self.stalled_for,
            "reported": dict(self.reported),
        }

    def load_state_dict(self, sd: dict) -> None:
        for k in self._WINDOWS:
            getattr(self, k).extend(sd.get(k, ()))  # feature_penalty: absent in older checkpoints
        self.stalled_for = sd["stalled_for"]
        self.reported = dict(sd.get("reported", {}))  # absent in checkpoints before it existed

    def update(self, update: int, metrics: dict[str, float]) -> list[HealthEvent]:
        """Feed one update's metrics; return what looks wrong now (empty when healthy)."""
        events = []
        grad_norm = metrics.get("grad_norm")
        if grad_norm is not None and math.isfinite(grad_norm):
            if len(self.grad_norm) >= 20:
                median = statistics.median(self.grad_norm)
                if grad_norm > self.cfg.grad_norm_factor * max(median, 1e-8):
                    events.append(
                        HealthEvent(
                            "grad_norm_outlier",
                            f"grad norm {grad_norm:.3g} is {grad_norm / median:.0f}x its running "
                            f"median {median:.3g}",
                            fatal=False,
                        )
                    )
            self.grad_norm.append(grad_norm)
        if "contrastive_loss" not in metrics:
            return events
        self.loss.append(metrics["contrastive_loss"])
        self.accuracy.append(metrics.get("accuracy", float("nan")))
        self.perplexity.append(metrics.get("code_perplexity", float("nan")))
        if "feature_penalty" in metrics:
            self.feature_penalty.append(metrics["feature_penalty"])
        if update < self.cfg.warmup_updates or len(self.loss) < self.cfg.window:
            return events
        return events + self._lasting(update, self._judge(metrics))

    def _lasting(self, update: int, found: list[HealthEvent]) -> list[HealthEvent]:
        """Of the failures ``found`` now, those due a report: new, or last told long ago."""
        kinds = {e.kind for e in found}
        self.reported = {k: u for k, u in self.reported.items() if k in kinds}
        due = []
        for e in found:
            last = self.reported.get(e.kind)
            if last is None or update - last >= self.cfg.report_every:
                self.reported[e.kind] = update
                due.append(e)
        return due

    def _judge(self, metrics: dict[str, float]) -> list[HealthEvent]:
        events = []
        loss, acc = statistics.fmean(self.loss), statistics.fmean(self.accuracy)
        ppl_per_group = statistics.fmean(self.perplexity) / self.num_groups
        if ppl_per_group < self.cfg.collapse_perplexity:
            events.append(
                HealthEvent(
                    "collapse",
                    f"codebook collapse: code perplexity per group {ppl_per_group:.2f} "
                    f"(< {self.cfg.collapse_perplexity}); raise the diversity loss weight or the "
                    "Gumbel temperature",
                    fatal=True,
                )
            )
        if len(self.feature_penalty) == self.cfg.window:
            pen = statistics.fmean(self.feature_penalty)
            if pen < self.cfg.dead_feature_penalty:
                events.append(
                    HealthEvent(
                        "dead_extractor",
                        f"dead feature extractor: its output's mean square is {pen:.2g} "
                        f"(< {self.cfg.dead_feature_penalty:g}), so every target quantizes "
                        f"alike; {_lower_lr(metrics)} and restart",
                        fatal=True,
                    )
                )
        if acc > self.cfg.degenerate_accuracy and loss < self.cfg.degenerate_loss:
            events.append(
                HealthEvent(
                    "degenerate",
                    f"degenerate solution: contrastive accuracy {acc:.3f} with loss {loss:.3f}; "
                    "negatives are trivially separable (check padding/masking)",
                    fatal=True,
                )
            )
        if abs(loss - self.chance_loss) / self.chance_loss < self.cfg.stall_tolerance:
            self.stalled_for += 1
        else:
            self.stalled_for = 0
        if self.stalled_for >= self.cfg.stall_updates:
            why = self._stall_cause(metrics)
            events.append(
                HealthEvent(
                    "stall",
                    f"stall: contrastive loss {loss:.3f} has stayed near chance log(K+1)="
                    f"{self.chance_loss:.3f} for {self.stalled_for} updates{why}",
                    fatal=True,
                )
            )
        return events

    def _stall_cause(self, metrics: dict[str, float]) -> str:
        """What a stall's metrics point to, and the remedy that fits this run."""
        sim = metrics.get("target_similarity")
        if sim is None or sim <= 0.9:
            return f"; {_lower_lr(metrics)} or check the data"
        why = f"; the targets are near-identical (mean cosine {sim:.2f})"
        if self.codebook_init != "centered":
            return f"{why}: try model.codebook_init=centered"
        pen = metrics.get("feature_penalty")
        if pen is not None and pen < 1e-4:
            why += f" and the extractor's output has shrunk to ~0 (feature penalty {pen:.2g})"
        return f"{why} although the codebook init is centered: {_lower_lr(metrics)}"


def _lower_lr(metrics: dict[str, float]) -> str:
    lr = metrics.get("lr")
    return f"lower optim.lr (now {lr:.3g})" if lr is not None else "lower optim.lr"
