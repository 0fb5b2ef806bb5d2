"""How much LibriSpeech train-960 audio the old 2-15.6 s pretraining filter dropped, and how much
cropping to ``max_sample_size`` removes instead.

The old rule kept only cuts of 2-15.6 s. wav2vec 2.0 as fairseq and NVIDIA run it skips cuts
shorter than ``min_sample_size`` (32000 samples, 2 s) and crops longer ones to
``max_sample_size`` (250000 samples, 15.625 s). For each training part the script prints the
utterances and hours the old filter drops, and the hours that a crop of every long cut to
15.625 s removes (a lower bound of what cropping costs: a batch is also cropped to its shortest
cut, which depends on the sampler).

Without ``--cuts`` the durations are simulated, since no real LibriSpeech is needed to run it:

- Counts and hours per part are LibriSpeech's published ones (train-clean-100 28,539 utterances,
  100.6 h; train-clean-360 104,014, 363.6 h; train-other-500 148,688, 496.7 h).
- The shape of each part's duration distribution comes from the percentiles icefall publishes
  for its LibriSpeech cut sets (``egs/librispeech/ASR/local/display_manifest_statistics.py``:
  min, 0.1 %, 0.5 %, 1 %, 5 %, 10 %, 25 %, 50 %, 75 %, 90 %, 95 %, 99 %, 99.5 %, 99.9 %, max).
  Those cut sets hold each utterance three times, at speeds 0.9, 1.0 and 1.1 (their counts are
  exactly 3x LibriSpeech's), so the script first finds the quantiles of an unperturbed
  distribution whose three-speed mixture has the published percentiles (a fixed-point
  iteration on the quantiles), then scales it so its mean is the published hours / utterances.
- Between the percentiles the quantile function is linear; durations are capped at 35 s (the
  longest segment LibriSpeech's alignment produced). Each part gets its published number of
  durations, one per evenly spaced quantile level, so the figures are deterministic.

With ``--cuts PATH`` (a lhotse cut set, e.g. ``data/manifests/librispeech_cuts_pretrain.jsonl.gz``
written before the change, or any part's cut set) the same figures come from its real durations.

    python benchmarks/duration_filter.py
    python benchmarks/duration_filter.py \\
        --cuts data/manifests/librispeech_cuts_train-clean-{100,360}.jsonl.gz
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

MIN_SECONDS = 32_000 / 16_000  # fairseq's min_sample_size
MAX_SECONDS = 250_000 / 16_000  # fairseq's max_sample_size, 15.625 s
OLD_MAX_SECONDS = 15.6  # the old filter's upper bound
SEGMENT_CAP_SECONDS = 35.0
SPEEDS = (0.9, 1.0, 1.1)

LEVELS = np.array([0.0, 0.001, 0.005, 0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99,
                   0.995, 0.999, 1.0])
# icefall's published percentiles (seconds) of its 3-speed LibriSpeech cut sets, at LEVELS
PERTURBED_PERCENTILES = {
    "train-clean-100": [1.3, 1.9, 2.2, 2.5, 4.2, 6.4, 11.4, 13.8, 15.3, 16.7, 17.3, 18.1, 18.4,
                        18.8, 27.2],
    "train-clean-360": [1.0, 1.8, 2.2, 2.5, 4.2, 6.2, 11.2, 13.7, 15.3, 16.6, 17.3, 18.1, 18.4,
                        18.8, 33.0],
    "train-other-500": [0.8, 1.7, 2.1, 2.3, 3.5, 5.0, 9.8, 13.4, 15.1, 16.5, 17.2, 18.1, 18.4,
                        18.9, 31.0],
}
# LibriSpeech's published sizes: utterances, hours
PUBLISHED = {"train-clean-100": (28_539, 100.6), "train-clean-360": (104_014, 363.6),
             "train-other-500": (148_688, 496.7)}


def mixture_quantiles(quantiles: np.ndarray) -> np.ndarray:
    """Quantiles at LEVELS of the 3-speed mixture of the distribution with these quantiles."""
    grid = np.linspace(0.5 * quantiles[0], quantiles[-1] / min(SPEEDS) * 1.01, 20_000)
    # a copy at speed s lasts d / s, so its CDF at x is F(s x)
    cdf = np.mean([np.interp(s * grid, quantiles, LEVELS) for s in SPEEDS], axis=0)
    return np.interp(LEVELS, cdf, grid)


def unperturbed_quantiles(perturbed: list[float], iterations: int = 200) -> np.ndarray:
    """Quantiles whose 3-speed mixture has the ``perturbed`` ones (fixed-point iteration)."""
    target = np.asarray(perturbed, dtype=float)
    q = target.copy()
    for _ in range(iterations):
        q = np.maximum.accumulate(q * target / mixture_quantiles(q))
    return q


def simulated_durations(part: str, undo_speed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """LibriSpeech-like durations of one part and the quantiles (at LEVELS) they come from.

    ``undo_speed=False`` takes icefall's percentiles as they are (speed copies included), for
    comparison: the figures then bracket what the deconvolution's assumptions change.
    """
    count, hours = PUBLISHED[part]
    published = PERTURBED_PERCENTILES[part]
    q = unperturbed_quantiles(published) if undo_speed else np.asarray(published, dtype=float)
    levels = (np.arange(count) + 0.5) / count
    durations = np.interp(levels, LEVELS, q)
    durations *= hours * 3600 / durations.sum()  # the published mean
    return np.minimum(durations, SEGMENT_CAP_SECONDS), q


@dataclass
class Figures:
    """What each rule does to one set of durations (hours and utterance counts)."""

    utts: int
    hours: float
    old_dropped_utts: int
    old_dropped_hours: float
    old_too_long_utts: int
    old_too_long_hours: float
    short_utts: int
    short_hours: float
    cropped_utts: int
    crop_removed_hours: float


def figures(durations: np.ndarray) -> Figures:
    """Apply the old 2-15.6 s filter and the skip-short, crop-long rule to ``durations``."""
    d = np.asarray(durations, dtype=float)
    short = d < MIN_SECONDS
    too_long = d > OLD_MAX_SECONDS
    long = d > MAX_SECONDS
    return Figures(
        utts=len(d), hours=d.sum() / 3600,
        old_dropped_utts=int((short | too_long).sum()),
        old_dropped_hours=d[short | too_long].sum() / 3600,
        old_too_long_utts=int(too_long.sum()), old_too_long_hours=d[too_long].sum() / 3600,
        short_utts=int(short.sum()), short_hours=d[short].sum() / 3600,
        cropped_utts=int(long.sum()),
        crop_removed_hours=(d[long] - MAX_SECONDS).sum() / 3600)


def report(name: str, f: Figures) -> str:
    """Table row: the part, its size, what the old filter drops, what cropping removes."""
    pct = 100 / f.hours
    return (f"| {name} | {f.utts:,} | {f.hours:.1f} | {f.old_dropped_utts:,} "
            f"({100 * f.old_dropped_utts / f.utts:.1f} %) | {f.old_dropped_hours:.1f} "
            f"({pct * f.old_dropped_hours:.1f} %) | {f.old_too_long_hours:.1f} "
            f"({pct * f.old_too_long_hours:.1f} %) | {f.short_hours:.2f} "
            f"({pct * f.short_hours:.2f} %) | {f.cropped_utts:,} | {f.crop_removed_hours:.1f} "
            f"({pct * f.crop_removed_hours:.1f} %) |")


HEADER = ("| set | utts | hours | old filter drops: utts | old filter drops: hours | of which "
          "> 15.6 s: hours | < 2 s (both rules): hours | cuts cropped | crop removes: hours |\n"
          "|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cuts", nargs="+", help="lhotse cut sets to read durations from instead")
    args = ap.parse_args()
    print(f"old rule: keep {MIN_SECONDS:g}-{OLD_MAX_SECONDS:g} s; new rule: skip < "
          f"{MIN_SECONDS:g} s (min_sample_size 32000), crop > {MAX_SECONDS:g} s "
          "(max_sample_size 250000)")
    if args.cuts:
        from lhotse import load_manifest_lazy

        print(HEADER)
        every = []
        for path in args.cuts:
            d = np.array([c.duration for c in load_manifest_lazy(path)])
            every.append(d)
            print(report(path, figures(d)))
        if len(every) > 1:
            print(report("all", figures(np.concatenate(every))))
        return
    print("simulated durations: LibriSpeech's published counts and hours per part; the shape "
          "from icefall's published percentiles of its 0.9/1.0/1.1-speed cut sets, with the "
          "speed perturbation undone; linear between percentiles; capped at 35 s")
    every, as_published, lines = [], [], []
    for part in PUBLISHED:
        d, q = simulated_durations(part)
        every.append(d)
        as_published.append(simulated_durations(part, undo_speed=False)[0])
        lines.append(report(part, figures(d)))
        fit = np.abs(mixture_quantiles(q) - PERTURBED_PERCENTILES[part]).max()
        shown = ", ".join(f"{100 * p:g}%: {v:.1f}" for p, v in zip(LEVELS, q, strict=True)
                          if p in (0.0, 0.05, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0))
        print(f"  {part}: mean {d.mean():.2f} s; unperturbed quantiles (s) {shown}; their "
              f"3-speed mixture is within {fit:.2f} s of icefall's percentiles")
    print(HEADER)
    print("\n".join(lines))
    print(report("train-960", figures(np.concatenate(every))))
    print(report("train-960, percentiles as published (speed copies not undone)",
                 figures(np.concatenate(as_published))))


if __name__ == "__main__":
    main()
