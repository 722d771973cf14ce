"""Files guard writes for people (exports, registers, bundles): complete or not there at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextlib.contextmanager
def _atomic_replace(path: Path) -> Iterator[tuple[int, Path]]:
    """A temporary file beside ``path`` (fd, path), renamed over ``path`` on success.

    A failure (or an interrupt) removes the temporary file and leaves ``path`` as it was. The
    caller owns the fd: it must write, sync and close it inside the block.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        yield fd, tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_text_file(path: Path) -> Iterator[IO[str]]:
    """Write ``path`` through a temporary file beside it, synced and renamed on success.

    A failure (or an interrupt) removes the temporary file and leaves ``path`` as it was: a
    reader never sees half an export. The file is created 0600 (``mkstemp``).
    """
    with (
        _atomic_replace(path) as (fd, _tmp),
        os.fdopen(fd, "w", encoding="utf-8", newline="") as out,
    ):
        yield out
        out.flush()
        os.fsync(out.fileno())


@contextlib.contextmanager
def atomic_binary_file(path: Path) -> Iterator[IO[bytes]]:
    """:func:`atomic_text_file` for bytes (a ZIP bundle): complete at ``path`` or absent."""
    with _atomic_replace(path) as (fd, _tmp), os.fdopen(fd, "wb") as out:
        yield out
        out.flush()
        os.fsync(out.fileno())
