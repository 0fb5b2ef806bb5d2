"""icefall-format scoring: counts against kaldialign, file layout, summaries parse back."""

import os

import kaldialign
import pytest

from hourglass_w2v2.scoring import (
    error_counts,
    error_stats,
    format_recogs,
    format_summary,
    read_summary,
    score_results,
    to_chars,
    write_group,
)

RESULTS = [
    ("utt-2", "THE CAT SAT ON THE MAT".split(), "THE CAT SAT IN A MAT TODAY".split()),
    ("utt-1", "A DOG RAN".split(), "DOG RAN".split()),
    ("utt-3", "HELLO WORLD".split(), "HELLO WORLD".split()),
]


def test_counts_equal_kaldialign_edit_distance():
    stats, _ = error_stats(RESULTS)
    ref = {"ins": 0, "del": 0, "sub": 0}
    for _, r, h in RESULTS:
        d = kaldialign.edit_distance(r, h)
        for k in ref:
            ref[k] += d[k]
    assert (stats.ins, stats.dels, stats.subs) == (ref["ins"], ref["del"], ref["sub"]) == (1, 1, 2)
    assert stats.ref_len == 11 and stats.corr == 11 - 2 - 1
    assert stats.error_rate == pytest.approx(100 * 4 / 11)


def test_errs_file_format():
    _, text = error_stats(RESULTS)
    lines = text.splitlines()
    assert lines[0] == "%WER = 36.36"
    assert lines[1] == (
        "Errors: 1 insertions, 1 deletions, 2 substitutions, over 11 reference words (8 correct)"
    )
    assert "utt-1:\t(A->*) DOG RAN" in lines
    # adjacent errors are merged, as icefall prints them
    assert "utt-2:\tTHE CAT SAT (ON THE->IN A) MAT (*->TODAY)" in lines
    subs = lines[lines.index("SUBSTITUTIONS: count ref -> hyp") + 1 :]
    assert subs[:2] == ["1   THE -> A", "1   ON -> IN"]
    assert "1   A" in lines[lines.index("DELETIONS: count ref") + 1 :]
    stats = lines[
        lines.index("PER-WORD STATS: word  corr tot_errs count_in_ref count_in_hyp") + 1 :
    ]
    # THE: 1 correct, 1 sub as ref; in ref twice, in hyp once
    assert "THE   1 1 2 1" in stats


def test_cer_uses_characters_without_spaces():
    ((_, ref, hyp),) = to_chars([("u", ["AB", "C"], ["ABD"])])
    assert ref == ["A", "B", "C"] and hyp == ["A", "B", "D"]
    stats, _ = error_stats(to_chars([("u", ["AB", "C"], ["ABD"])]))
    assert stats.error_rate == pytest.approx(100 / 3)


def test_scored_files_and_summary_parse_back(tmp_path):
    wer, cer, files = score_results("test-clean", "greedy", RESULTS)
    files["cer-summary-test-clean.txt"] = format_summary(
        {"greedy": cer.error_rate, "lm_scale_0.6": 3.0}, "CER"
    )
    files["wer-summary-test-clean.txt"] = format_summary(
        {"greedy": wer.error_rate, "lm_scale_0.6": 12.5}
    )
    write_group(tmp_path, files, ["cer-summary-test-clean.txt", "wer-summary-test-clean.txt"])
    summary = read_summary(tmp_path / "wer-summary-test-clean.txt")
    assert list(summary) == ["lm_scale_0.6", "greedy"]  # best first
    assert summary["greedy"] == pytest.approx(wer.error_rate, abs=0.005)
    assert (tmp_path / "wer-summary-test-clean.txt").read_text().startswith("settings\tWER\n")
    assert read_summary(tmp_path / "cer-summary-test-clean.txt")["lm_scale_0.6"] == 3.0
    recogs = (tmp_path / "recogs-test-clean-greedy.txt").read_text().splitlines()
    assert recogs[:2] == ["utt-1:\tref=['A', 'DOG', 'RAN']", "utt-1:\thyp=['DOG', 'RAN']"]
    assert (tmp_path / "errs-test-clean-greedy.txt").read_text().startswith("%WER = 36.36")
    assert (tmp_path / "errs-cer-test-clean-greedy.txt").read_text().startswith("%CER = ")
    assert not list(tmp_path.glob(".*.tmp"))


def test_recogs_sorted_by_cut():
    assert format_recogs(RESULTS).splitlines()[0].startswith("utt-1:")


def test_empty_reference(caplog):
    """One empty reference is scored (hypothesis = insertions) and named; all empty is an error."""
    results = [("good", ["A", "B"], ["A", "B"]), ("empty-ref", [], ["X"])]
    wer, _, _ = score_results("t", "k", results)
    assert (wer.ins, wer.ref_len) == (1, 2)
    assert "empty-ref" in caplog.text
    with pytest.raises(ValueError, match="'t2' has no reference words"):
        score_results("t2", "k", [("e", [], ["X"])])


def test_bad_summary_is_named(tmp_path):
    (tmp_path / "wer-summary-x.txt").write_text("settings\tWER\ngreedy\tnot-a-number\n")
    with pytest.raises(ValueError, match="wer-summary-x.txt:2"):
        read_summary(tmp_path / "wer-summary-x.txt")


@pytest.mark.parametrize(
    "body, problem",
    [
        ("greedy\tnan\n", r"wer-summary-x.txt:2: .*'nan' is not a rate"),
        ("greedy\t-3.5\n", r"wer-summary-x.txt:2: .*'-3.5' is negative"),
        ("greedy\tinf\n", r"wer-summary-x.txt:2: .*'inf' is not a rate"),
        ("greedy\t12.00\ngreedy\t13.00\n", r"wer-summary-x.txt:3: key 'greedy' appears twice"),
        ("", r"wer-summary-x.txt: no '<key><TAB><rate>' line"),
    ],
)
def test_summary_values_are_checked(tmp_path, body, problem):
    (tmp_path / "wer-summary-x.txt").write_text("settings\tWER\n" + body)
    with pytest.raises(ValueError, match=problem):
        read_summary(tmp_path / "wer-summary-x.txt")


def test_summary_record_lines(tmp_path):
    """``# name: value`` lines after the rates record where the numbers come from."""
    from hourglass_w2v2.scoring import format_summary, read_summary_record

    text = format_summary({"b": 2.0, "a": 1.0}, "WER", {"checkpoint": "x/ckpt-10.pt", "update": 10})
    assert text == "settings\tWER\na\t1.00\nb\t2.00\n# checkpoint: x/ckpt-10.pt\n# update: 10\n"
    (tmp_path / "wer-summary-t.txt").write_text(text)
    assert read_summary(tmp_path / "wer-summary-t.txt") == {"a": 1.0, "b": 2.0}
    assert read_summary_record(tmp_path / "wer-summary-t.txt") == {
        "checkpoint": "x/ckpt-10.pt",
        "update": "10",
    }


def test_error_counts():
    e = error_counts(["AB CAB", "FED"], ["AB CAB BEE", "FEED"])
    assert e == {"word_errors": 2, "words": 3, "char_errors": 4, "chars": 8}


def test_write_group_on_a_full_disk_keeps_the_previous_group(tmp_path, monkeypatch):
    """Each staged file is synced before any is renamed in: a full disk (fsync failing) leaves
    the previous group whole and no staging folder behind."""
    old = {"recogs-t-greedy.txt": "old recogs\n", "wer-summary-t.txt": "settings\tWER\n"}
    write_group(tmp_path, old, ["wer-summary-t.txt"])
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == old

    def disk_full(fd):
        raise OSError("No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    new = {"recogs-t-greedy.txt": "new recogs\n", "wer-summary-t.txt": "settings\tWER\ng\t1\n"}
    with pytest.raises(OSError, match="No space"):
        write_group(tmp_path, new, ["wer-summary-t.txt"])
    monkeypatch.undo()
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == old
    write_group(tmp_path, new, ["wer-summary-t.txt"], stale=["recogs-t-gone.txt"])
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == new


def test_word_error_rate_of_word_lists():
    from hourglass_w2v2.scoring import word_error_rate

    refs = [["THE", "CAT", "SAT"], ["A", "DOG"]]
    hyps = [["THE", "BAT", "SAT", "DOWN"], []]  # 1 sub + 1 ins, 2 del: 4 errors / 5 words
    assert word_error_rate(refs, hyps) == 80.0
    assert word_error_rate([[]], [["X"]]) == 100.0  # no reference words: errors per one word
