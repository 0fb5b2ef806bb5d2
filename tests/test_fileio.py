"""Atomic writes (every writer's one helper), stale temp-file cleanup and the YAML loader."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hourglass_w2v2.fileio import (
    atomic_output,
    atomic_output_dir,
    atomic_write,
    atomic_write_text,
    parse_yaml,
    remove_stale_temp_files,
)


def test_stale_temp_files_of_a_killed_write_are_removed(tmp_path):
    stale = [".ckpt-6.pt.k2x_9abc.tmp", ".train_info.json.q1w2e3r4.tmp", ".best.pt.abcdefgh.tmp"]
    kept = ["ckpt-3.pt", "notes.tmp", ".hidden", "ckpt-6.pt.corrupt", ".cfg.tmp"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
    removed = remove_stale_temp_files(tmp_path)
    assert sorted(p.name for p in removed) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    assert remove_stale_temp_files(tmp_path / "missing") == []


def test_temp_name_of_atomic_write_is_what_cleanup_removes(tmp_path, monkeypatch):
    """A write killed before its rename leaves exactly the kind of file cleanup removes."""
    seen = []

    def killed(f):
        seen.extend(p.name for p in tmp_path.iterdir())  # the temp file being written
        raise KeyboardInterrupt  # stands in for the kill; the real one runs no cleanup

    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: None)  # as after SIGKILL
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "train_info.json", killed)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == seen
    assert [p.name for p in remove_stale_temp_files(tmp_path)] == seen


def test_atomic_write_text_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "train_info.json"
    atomic_write_text(path, '{"updates": 3}\n')
    assert path.read_text() == '{"updates": 3}\n'
    assert path.stat().st_mode & 0o777 == 0o666 & ~_current_umask()  # as open() would make it

    def disk_full(fd):
        raise OSError("No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(path, '{"updates": 6}\n')
    monkeypatch.undo()
    assert path.read_text() == '{"updates": 3}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["train_info.json"]


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_atomic_output_keeps_the_suffix_a_writer_picks_its_format_from(tmp_path):
    target = tmp_path / "cuts_dev.jsonl.gz"
    with atomic_output(target, keep_suffix=True) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".tmp.jsonl.gz")
        assert tmp.name.startswith(".cuts_dev.jsonl.gz.")
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["cuts_dev.jsonl.gz"]


def test_atomic_output_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "HLG.fst"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="could not write"), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise OSError("could not write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["HLG.fst"]


def test_a_killed_write_with_a_kept_suffix_is_cleaned_up(tmp_path):
    (tmp_path / ".cuts.jsonl.gz.ab12cd34.tmp.jsonl.gz").write_bytes(b"x")
    (tmp_path / "cuts.jsonl.gz").write_bytes(b"x")
    assert [p.name for p in remove_stale_temp_files(tmp_path)] == [
        ".cuts.jsonl.gz.ab12cd34.tmp.jsonl.gz"
    ]


def test_atomic_output_dir_publishes_the_whole_folder_or_nothing(tmp_path):
    out = tmp_path / "shards"
    (tmp_path / ".shards.partial").mkdir()  # left by a killed run
    (tmp_path / ".shards.partial" / "stale").write_text("old")
    with pytest.raises(RuntimeError), atomic_output_dir(out) as tmp:
        (tmp / "a").write_text("1")
        assert not out.exists()  # nothing under the real name while it is written
        raise RuntimeError("disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    with atomic_output_dir(out) as tmp:
        assert list(tmp.iterdir()) == []  # the killed run's leftovers are gone
        (tmp / "a").write_text("1")
    assert [p.name for p in tmp_path.iterdir()] == ["shards"] and (out / "a").read_text() == "1"
    with pytest.raises(FileExistsError, match="shards exists"), atomic_output_dir(out):
        pass
    with atomic_output_dir(out, replace=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b"]
    with pytest.raises(RuntimeError), atomic_output_dir(out, replace=True) as tmp:
        raise RuntimeError("killed")
    assert sorted(p.name for p in out.iterdir()) == ["b"]  # a failed replace keeps the old one


def test_parse_yaml_reads_exponents_without_a_dot_as_floats():
    assert parse_yaml("lr: 5e-4\nsteps: 10\nname: 1e-4x\n") == {
        "lr": 0.0005,
        "steps": 10,
        "name": "1e-4x",
    }
