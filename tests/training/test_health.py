"""The pretraining health monitor on synthetic metric streams."""

from __future__ import annotations

import math

from hourglass_w2v2.training.config import HealthConfig
from hourglass_w2v2.training.health import HealthMonitor

CFG = HealthConfig(warmup_updates=10, window=5, stall_updates=20, report_every=15)


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


STALLED = {"contrastive_loss": math.log(101), "accuracy": 0.01, "code_perplexity": 300.0}


def _reports(mon, metrics_fn, updates):
    return [(u, e.kind) for u in updates for e in mon.update(u, metrics_fn(u))]


def test_a_lasting_stall_is_reported_at_onset_then_every_report_every_updates():
    # verdicts start at update 10 (warmup 10, window 5 full at 5), so stalled_for reaches
    # stall_updates=20 at update 29; report_every=15 repeats it at 44 and 59
    mon = HealthMonitor(CFG, num_negatives=100, num_groups=2)
    assert _reports(mon, lambda u: STALLED, range(1, 61)) == [(29, "stall"), (44, "stall"),
                                                            (59, "stall")]
    # a resumed monitor keeps the schedule: nothing new until 74
    again = HealthMonitor(CFG, 100, 2)
    again.load_state_dict(mon.state_dict())
    assert _reports(again, lambda u: STALLED, range(61, 75)) == [(74, "stall")]


def test_a_failure_that_clears_and_returns_is_reported_again_at_once():
    mon = HealthMonitor(CFG, num_negatives=100, num_groups=2)

    def ppl(u):  # collapsed except at updates 28-31: the 5-update window clears at 28 and is
        # all collapsed again at 36, 11 updates after the last report (< report_every)
        return healthy(u) | {"code_perplexity": 300.0 if 28 <= u < 32 else 2.5}

    assert _reports(mon, ppl, range(1, 50)) == [(10, "collapse"), (25, "collapse"),
                                              (36, "collapse")]


def test_stall_with_centered_codebook_names_the_lr_and_the_dead_extractor():
    # the failure seen at lr 2e-3 on the large synth corpus: targets identical although the
    # codebook init is centered, the extractor's output shrunk to ~0
    mon = HealthMonitor(CFG, num_negatives=100, num_groups=2, codebook_init="centered")
    metrics = STALLED | {"target_similarity": 0.99, "feature_penalty": 1e-7, "lr": 0.002}
    (event,) = [e for u in range(1, 30) for e in mon.update(u, metrics)]
    assert "lower optim.lr (now 0.002)" in event.message
    assert "feature penalty 1e-07" in event.message
    assert "codebook_init=centered" not in event.message


def test_dead_extractor_is_reported_once_its_window_is_dead():
    # the lr 2e-3 run's feature penalty: ~1e-4 until update 30, then ~1e-10 (dead); the
    # window mean drops below 1e-8 only when all 5 values are dead, at update 34
    def metrics(u):
        return healthy(u) | {"feature_penalty": 1e-4 if u < 30 else 1e-10, "lr": 0.002}

    mon = HealthMonitor(CFG, num_negatives=100, num_groups=2)
    events = [(u, e) for u in range(1, 40) for e in mon.update(u, metrics(u))]
    assert [(u, e.kind, e.fatal) for u, e in events] == [(34, "dead_extractor", True)]
    assert "1e-10" in events[0][1].message and "now 0.002" in events[0][1].message


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
