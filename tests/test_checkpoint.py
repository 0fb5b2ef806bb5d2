"""Checkpoint writes, resume from the newest loadable one, rotation and averaging."""

from __future__ import annotations

import os
import re

import pytest
import torch

from hourglass_w2v2.checkpoint import (
    CheckpointError,
    average_checkpoints,
    list_checkpoints,
    load_checkpoint,
    load_latest,
    load_torch_file,
    rotate_checkpoints,
    set_aside,
)
from hourglass_w2v2.fileio import atomic_save


def _ckpt(value: float, step: int = 0) -> dict:
    return {"model": {"w": torch.full((3,), value), "n": torch.tensor(step)}, "update": step}


def test_truncated_newest_is_skipped(tmp_path, caplog):
    for step in (2, 4):
        atomic_save(_ckpt(float(step), step), tmp_path / f"ckpt-{step}.pt")
    newest = tmp_path / "ckpt-4.pt"
    newest.write_bytes(newest.read_bytes()[:100])  # a crash outside our write, a disk error
    ckpt, path = load_latest(tmp_path)
    assert path.name == "ckpt-2.pt" and ckpt["update"] == 2
    assert "ckpt-4.pt" in caplog.text and "corrupt" in caplog.text


def test_load_latest_none_when_empty(tmp_path):
    assert load_latest(tmp_path) is None
    assert load_latest(tmp_path / "missing") is None


def test_failing_write_leaves_previous_intact(tmp_path, monkeypatch):
    path = tmp_path / "ckpt-2.pt"
    atomic_save(_ckpt(1.0, 2), path)
    before = path.read_bytes()
    real_save = torch.save

    def half_then_fail(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        f.truncate(50)  # half-written file ...
        raise OSError("No space left on device")  # ... then the disk fills up

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        atomic_save(_ckpt(2.0, 2), path)  # overwrite attempt
    with pytest.raises(OSError):
        atomic_save(_ckpt(2.0, 4), tmp_path / "ckpt-4.pt")
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-2.pt"]  # no temp files left
    assert load_latest(tmp_path)[0]["model"]["w"][0] == 1.0


def test_failing_rename_leaves_previous_intact(tmp_path, monkeypatch):
    atomic_save(_ckpt(1.0, 2), tmp_path / "ckpt-2.pt")

    def fail(*a, **k):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="rename failed"):
        atomic_save(_ckpt(2.0, 4), tmp_path / "ckpt-4.pt")
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-2.pt"]


def test_rotation_keeps_last_and_milestones(tmp_path):
    for step in range(1, 11):
        (tmp_path / f"ckpt-{step}.pt").write_bytes(b"x")
    (tmp_path / "best.pt").write_bytes(b"x")
    rotate_checkpoints(tmp_path, keep_last=3, keep_every=4)
    assert [u for u, _ in list_checkpoints(tmp_path)] == [4, 8, 9, 10]
    assert (tmp_path / "best.pt").exists()


def test_average_checkpoints(tmp_path):
    paths = []
    for i, v in enumerate([1.0, 2.0, 6.0]):
        paths.append(tmp_path / f"ckpt-{i}.pt")
        atomic_save(_ckpt(v, step=10 + i), paths[-1])
    avg = average_checkpoints(paths)
    torch.testing.assert_close(avg["model"]["w"], torch.full((3,), 3.0))
    assert avg["model"]["n"].item() == 12  # integer buffers come from the last checkpoint
    assert avg["update"] == 12 and len(avg["averaged_from"]) == 3


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "missing"])
def test_unreadable_checkpoint_error_names_the_path(tmp_path, damage):
    path = tmp_path / "ckpt-4.pt"
    atomic_save(_ckpt(1.0, 4), path)
    data = path.read_bytes()
    if damage == "missing":
        path.unlink()
    else:
        cut = {"empty": b"", "truncated": data[: len(data) // 2], "garbage": os.urandom(3000)}
        path.write_bytes(cut[damage])
    for load in (load_checkpoint, load_torch_file):
        with pytest.raises(CheckpointError, match=re.escape(str(path))) as err:
            load(path)
        assert isinstance(err.value, RuntimeError)  # what load_latest skips
    assert load_latest(tmp_path) is None


def test_rotation_never_deletes_the_checkpoint_just_written(tmp_path):
    # two newer files that do not load (left from an earlier run) sort after the new one
    for step in (30, 60):
        (tmp_path / f"ckpt-{step}.pt").write_bytes(b"garbage")
    new = tmp_path / "ckpt-3.pt"
    atomic_save(_ckpt(3.0, 3), new)
    removed = rotate_checkpoints(tmp_path, keep_last=2, keep_every=0, keep=new)
    assert removed == []
    assert load_checkpoint(new)["update"] == 3
    atomic_save(_ckpt(6.0, 6), tmp_path / "ckpt-6.pt")
    removed = rotate_checkpoints(tmp_path, keep_last=1, keep_every=0, keep=tmp_path / "ckpt-6.pt")
    assert [p.name for p in removed] == ["ckpt-3.pt", "ckpt-30.pt"]
    assert [u for u, _ in list_checkpoints(tmp_path)] == [6, 60]


def test_set_aside_renames_and_never_overwrites(tmp_path):
    for _ in range(2):
        (tmp_path / "ckpt-9.pt").write_bytes(b"bad")
        moved = set_aside(tmp_path / "ckpt-9.pt")
        assert moved.read_bytes() == b"bad"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["ckpt-9.pt.corrupt", "ckpt-9.pt.corrupt.1"]
    assert list_checkpoints(tmp_path) == []
