"""Where a long text is cut into overlapping windows: plain string work, no model imported.

The detector (``guard.detection.engine``) analyses each window on its own; the analysis pool
(``guard.detection.executor``) splits a long text's windows between its workers, and must do
so in the API process without importing spaCy or Presidio. Both cut with this one function,
so the windows a worker is sent are the windows the detector would have cut.
"""

from __future__ import annotations

#: Most windows the NER reads in one batch (``nlp.pipe``); a batch also holds at most one
#: window's worth of characters, which bounds its memory whatever the texts. For messages of
#: a sentence or two, 256 at a time ran the NER 8% faster than 64 (bench/README.md).
DEFAULT_BATCH_TEXTS = 256


#: Characters of context a finding needs around it inside its window: findings closer than
#: this to a window's cut edge are left to the neighbouring window, which sees them with
#: their context. 128 covers the context booster's look-back (80 characters), lookbehinds of
#: the patterns, and the NER's view (a few tokens each side).
WINDOW_MARGIN = 128
#: How far back from a window's nominal edge a line break or a space is looked for, so that
#: windows start at the start of a line or a word.
_CUT_SLACK = 256


def window_bounds(text: str, *, size: int, overlap: int) -> list[tuple[int, int]]:
    """Where ``text`` is cut into windows: (start, end) pairs, each at most ``size`` long.

    Consecutive windows share at least ``overlap`` characters; cuts fall after a line break,
    else after a space or tab, within ``_CUT_SLACK`` characters of the nominal edge, else
    anywhere (a text without spaces). An entity of up to ``overlap - 2 * WINDOW_MARGIN``
    characters lies wholly inside some window, at least ``WINDOW_MARGIN`` from its cut edges.
    """
    length = len(text)
    if length <= size:
        return [(0, length)]
    slack = min(_CUT_SLACK, overlap // 4)
    bounds: list[tuple[int, int]] = []
    start = 0
    while start + size < length:
        end = _cut_before(text, start + size, slack)
        bounds.append((start, end))
        start = _cut_before(text, end - overlap, slack)
    bounds.append((start, length))
    return bounds


def split_windows(windows: list[tuple[int, int]], parts: int) -> list[list[tuple[int, int]]]:
    """``windows`` in ``parts`` contiguous groups of near-equal count (at most one each more).

    Never more groups than windows, never fewer than one.
    """
    parts = max(1, min(parts, len(windows)))
    size, extra = divmod(len(windows), parts)
    groups: list[list[tuple[int, int]]] = []
    start = 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        groups.append(windows[start:end])
        start = end
    return groups


def _cut_before(text: str, position: int, slack: int) -> int:
    """A cut at or before ``position``: just after a line break, else a space, else there."""
    floor = position - slack
    cut = text.rfind("\n", floor, position)
    if cut == -1:
        cut = max(text.rfind(" ", floor, position), text.rfind("\t", floor, position))
    return cut + 1 if cut != -1 else position
