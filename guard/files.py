"""Files guard writes for people (exports, registers): complete or not there at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextlib.contextmanager
def atomic_text_file(path: Path) -> Iterator[IO[str]]:
    """Write ``path`` through a temporary file beside it, synced and renamed on success.

    A failure (or an interrupt) removes the temporary file and leaves ``path`` as it was: a
    reader never sees half an export. The file is created 0600 (``mkstemp``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
