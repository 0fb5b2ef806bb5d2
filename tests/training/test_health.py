"""The pretraining health monitor on synthetic metric streams."""

from __future__ import annotations

import math

from hourglass_w2v2.training.config import HealthConfig
from hourglass_w2v2.training.health import HealthMonitor

CFG = HealthConfig(warmup_updates=10, window=5, stall_updates=20)


def _run(metrics_fn, updates=60):
    mon = HealthMonitor(CFG, num_negatives=100, num_groups=2)
    kinds = set()
    for u in range(1, updates + 1):
        kinds |= {e.kind for e in mon.update(u, metrics_fn(u))}
    return kinds


def healthy(u):
    return {
        "contrastive_loss": 3.0 - u / 100,
        "accuracy": 0.3,
        "code_perplexity": 300.0,
        "grad_norm": 1.0 + 0.1 * (u % 3),
    }


def test_healthy_run_has_no_findings():
    assert _run(healthy) == set()


def test_codebook_collapse():
    assert _run(lambda u: healthy(u) | {"code_perplexity": 2.5}) == {"collapse"}


def test_degenerate_solution():
    assert _run(lambda u: healthy(u) | {"accuracy": 1.0, "contrastive_loss": 0.001}) == {
        "degenerate"
    }


def test_stall_near_chance():
    chance = math.log(101)
    assert _run(lambda u: healthy(u) | {"contrastive_loss": chance + 0.01}) == {"stall"}
    # a stall shorter than stall_updates is not reported
    assert _run(lambda u: healthy(u) | {"contrastive_loss": chance}, updates=25) == set()


def test_stall_with_identical_targets_names_the_codebook_init():
    chance = math.log(101)
    mon = HealthMonitor(CFG, num_negatives=100, num_groups=2)
    stalled = {"contrastive_loss": chance, "accuracy": 0.01, "code_perplexity": 300.0}
    messages = []
    for u in range(1, 40):
        sim = 0.99 if u > 20 else 0.3
        messages += [e.message for e in mon.update(u, stalled | {"target_similarity": sim})]
    assert messages and "codebook_init=centered" in messages[-1]
    assert "0.99" in messages[-1]


def test_grad_norm_outlier_warns_only():
    mon = HealthMonitor(CFG, num_negatives=100, num_groups=2)
    for u in range(1, 30):
        assert mon.update(u, healthy(u)) == []
    events = mon.update(30, healthy(30) | {"grad_norm": 500.0})
    assert [(e.kind, e.fatal) for e in events] == [("grad_norm_outlier", False)]
    state = mon.state_dict()
    again = HealthMonitor(CFG, 100, 2)
    again.load_state_dict(state)
    assert again.state_dict() == state
