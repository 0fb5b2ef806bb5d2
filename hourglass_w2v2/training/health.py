"""Detects the known ways wav2vec 2.0 pretraining fails, from the per-update metrics.

- **codebook collapse**: the code perplexity per group (how many codebook entries are really
  used) falls towards 1, so the quantized targets carry no information;
- **degenerate solution**: contrastive accuracy -> 1 with loss -> 0, which means the task became
  trivial (e.g. negatives are distinguishable from positives by padding or position);
- **stall**: the contrastive loss stays near ``log(K + 1)``, chance for K distractors, long
  after warmup: the model learns nothing;
- **grad-norm outliers**: a gradient norm far above its running median (a spike that often
  precedes divergence).

Each finding is returned as a :class:`HealthEvent`; the trainer logs it, writes
``health/<kind>`` to tensorboard, and stops when ``health.stop_on_failure`` is set (outliers
only warn).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

from hourglass_w2v2.training.config import HealthConfig


@dataclass
class HealthEvent:
    """One finding: ``kind`` is collapse | degenerate | stall | grad_norm_outlier."""

    kind: str
    message: str
    fatal: bool


class HealthMonitor:
    """Keeps short windows of the pretraining metrics and judges them each update."""

    def __init__(self, cfg: HealthConfig, num_negatives: int, num_groups: int) -> None:
        self.cfg = cfg
        self.chance_loss = math.log(num_negatives + 1)
        self.num_groups = num_groups
        self.loss = deque(maxlen=cfg.window)
        self.accuracy = deque(maxlen=cfg.window)
        self.perplexity = deque(maxlen=cfg.window)
        self.grad_norm = deque(maxlen=max(cfg.window, 20))
        self.stalled_for = 0

    def state_dict(self) -> dict:
        windows = ("loss", "accuracy", "perplexity", "grad_norm")
        return {k: list(getattr(self, k)) for k in windows} | {"stalled_for": self.stalled_for}

    def load_state_dict(self, sd: dict) -> None:
        for k in ("loss", "accuracy", "perplexity", "grad_norm"):
            getattr(self, k).extend(sd[k])
        self.stalled_for = sd["stalled_for"]

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
        if update < self.cfg.warmup_updates or len(self.loss) < self.cfg.window:
            return events
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
            sim = metrics.get("target_similarity")
            why = (
                f"; the targets are near-identical (mean cosine {sim:.2f}): try "
                "model.codebook_init=centered"
                if sim is not None and sim > 0.9
                else "; lower the lr or check the data"
            )
            events.append(
                HealthEvent(
                    "stall",
                    f"stall: contrastive loss {loss:.3f} has stayed near chance log(K+1)="
                    f"{self.chance_loss:.3f} for {self.stalled_for} updates{why}",
                    fatal=True,
                )
            )
        return events
