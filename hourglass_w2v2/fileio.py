"""File helpers every layer shares: atomic writes and the YAML loader.

Every file the package writes (checkpoints, manifests, graphs, LMs, decode results, configs) goes
through :func:`atomic_write` or :func:`atomic_output`: the data goes to a hidden temporary file in
the same directory, is fsynced and renamed over the final name, so a crash or a full disk never
leaves half a file under a real name and the previous version stays intact. A process killed
mid-write leaves only a hidden ``.<name>.<8 chars>.tmp`` file, which
:func:`remove_stale_temp_files` clears at the next start. Folders written as a whole (Shar
shards, the synth corpus) go through :func:`atomic_output_dir` in the same way.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch
import yaml

# the temporary names atomic_output gives: ".<final name>.<mkstemp's 8 random chars>.tmp",
# followed by the final name's suffixes when the writer needs them to pick a format
_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)*$")


@contextmanager
def atomic_output(path: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write; on success fsync it and rename it over
    ``path``, on an exception remove it.

    For writers that take a file name (lhotse's ``to_file``, ``soundfile.write``, kaldifst's
    ``write``); ``keep_suffix`` ends the temporary name with ``path``'s suffixes (``.jsonl.gz``)
    for writers that choose the format from them. Readers see the old file or the new one, never
    a part. The new file gets the mode a plain ``open()`` would give it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".tmp" + ("".join(path.suffixes) if keep_suffix else "")
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    tmp = Path(name)
    try:
        # mkstemp makes the file owner-only; give it the mode a plain open() would
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


@contextmanager
def atomic_output_dir(path: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yield an empty folder ``.<name>.partial`` next to ``path`` to fill; on success rename it
    to ``path``, on an exception remove it.

    Readers see no ``path`` or the whole of it. A partial folder a killed run left is removed
    first. An existing ``path`` is an error (FileExistsError, before any work), or with
    ``replace`` is removed just before the rename.
    """
    path = Path(path)
    if path.exists() and not replace:
        raise FileExistsError(f"{path} exists; remove it to write it again")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if replace:
            shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: str | Path) -> None:
    """Make the renames into ``directory`` durable (they are directory entries, not file data)."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a binary file open on a temporary name next to ``path``, then put it
    in place as :func:`atomic_output` does; a failure leaves the old ``path`` untouched."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        write(f)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` ``obj`` to ``path`` through :func:`atomic_write`."""
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_write`."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temp files :func:`atomic_output` left in ``directory`` when its process was
    killed mid-write (SIGKILL, power loss); return them. Call it only while no write runs."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = sorted(p for p in directory.iterdir() if _TEMP_RE.match(p.name) and p.is_file())
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``5e-4`` (no dot) as a string; every config writes lrs that way."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` that also reads ``1e-4`` as a float, as YAML 1.2 and Python do."""
    return yaml.load(text, Loader=_Loader)
