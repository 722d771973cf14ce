r"""The text as detection reads it: Unicode NFKC, invisible characters gone, spaces plain.

Why: a value split by no-break spaces (``4111\u00a01111...``), by zero-width spaces
(``joe\u200b@example.com``) or written in full-width forms (``\uff10\uff11``, ``\uff4a``)
reads as a plain value to a person but not to a pattern. Detection therefore runs on a *view* of the
text: Unicode NFKC (compatibility forms folded: full-width and mathematical letters and
digits, ligatures, every no-break and typographic space), characters that are invisible by
definition removed (general category Cf: zero-width spaces and joiners, the soft hyphen,
bidi controls, the BOM; and the rest of Unicode's Default_Ignorable_Code_Point set:
variation selectors, the combining grapheme joiner, fillers), and any space left that is not
U+0020 made one. Offsets found in the view are mapped back to the original text exactly
(``NormalizedText.span``), so redaction replaces the original characters.

The map: the text is cut into *clusters*, a character followed by the characters that can
change with it under normalisation (non-starters, characters that may compose with the one
before, and removed characters), as UAX #15 allows: normalising each cluster on its own gives
the normalised text. Every character a cluster becomes maps to the whole cluster (less the
removed characters that end it), so a finding in the view covers in the original text
everything from the original start of its first character to the original end of its last:
the removed characters between them are inside, those just before or after it are not.
Clusters are at most ``MAX_CLUSTER`` characters long, as in UAX #15's Stream-Safe Text Format
(at most 30 non-starters in a row): CPython sorts combining marks by insertion, quadratic in
a run of them, and a hostile run of a million marks must stay linear.

Kept as written (less removed characters): a cluster NFKC would grow more than
``MAX_GROWTH`` times (U+FDFA becomes 18 characters), so the view is at most ``MAX_GROWTH``
times the text, and no PII is written with such characters; and a cluster NFKC would give a
space that was not one (spacing accents: U+00B4 ACUTE ACCENT becomes a space and a combining
acute), which would cut a name or a word written with it for an apostrophe in two.

Speed: most texts are ASCII, or already normal with nothing to remove; their view is the text
itself and no map is built. Otherwise only the *dirty* stretches (characters normalisation
could change, with the character before each) are cut into clusters; the rest is copied.
Time and memory are linear in the text.
"""

from __future__ import annotations

import itertools
import unicodedata
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache, lru_cache

import regex

#: Longest cluster, in characters: a starter and 31 followers. UAX #15's Stream-Safe Text
#: Format allows 30 non-starters in a row; a longer run is cut, as that format does.
MAX_CLUSTER = 32
#: Largest number of characters one character of a cluster may become in the view.
MAX_GROWTH = 4

#: Characters removed from the view: format characters and the default-ignorable ones.
_REMOVED_CLASS = r"\p{Cf}\p{Default_Ignorable_Code_Point}"
_REMOVED = regex.compile(rf"[{_REMOVED_CLASS}]+")
_TRAILING_REMOVED = regex.compile(rf"[{_REMOVED_CLASS}]++\Z")
#: Characters that make a text need the slow path although it is NFKC-normal.
_ODD = regex.compile(rf"[[{_REMOVED_CLASS}\p{{Zs}}]--[\x20]]", regex.V1)
#: A character that normalisation might change, or that might change the one before it.
_DIRTY_RUN = regex.compile(
    rf"[[{_REMOVED_CLASS}\p{{Zs}}\p{{NFKC_QC=No}}\p{{NFKC_QC=Maybe}}\P{{ccc=0}}]--[\x20]]++",
    regex.V1,
)
#: Characters that may normalise to one character on their own (see ``_one_for_one``).
_CANDIDATES_1_1 = regex.compile(r"[[\p{NFKC_QC=No}\p{Zs}]&&\p{ccc=0}--[\x20]]", regex.V1)
#: One cluster: any character, then those that normalise together with it (bounded).
_CLUSTER = regex.compile(
    rf"(?s).[{_REMOVED_CLASS}\p{{NFKC_QC=Maybe}}\P{{ccc=0}}]{{0,{MAX_CLUSTER - 1}}}"
)
#: A space separator other than U+0020 (NFKC leaves U+1680 OGHAM SPACE MARK one).
_SPACE = regex.compile(r"[[\p{Zs}]--[\x20]]", regex.V1)


@lru_cache(maxsize=4096)
def _normal_cluster(cluster: str) -> tuple[str, int]:
    """One cluster as the view holds it, and the cluster's length less its trailing removed.

    Removed characters that end a cluster belong to no character of the view: a finding does
    not end on them. Cached: the same few clusters recur in a text.
    """
    kept = _REMOVED.sub("", cluster)
    normal = _SPACE.sub(" ", unicodedata.normalize("NFKC", kept))
    spaces = kept.count(" ") + len(_SPACE.findall(kept))
    if len(normal) > MAX_GROWTH * len(cluster) or normal.count(" ") > spaces:
        # too long, or a space out of a spacing accent (U+00B4 is a space and a combining
        # acute): a name or word written with it for an apostrophe must stay one word
        normal = _SPACE.sub(" ", kept)
    trailing = _TRAILING_REMOVED.search(cluster)
    return normal, len(cluster) if trailing is None else trailing.start()


@cache
def _one_for_one() -> dict[int, str]:
    """The characters NFKC makes one other character on their own, for ``str.translate``.

    Full-width and mathematical letters and digits, no-break and typographic spaces, circled
    and superscript digits: a starter that becomes a starter which composes with nothing
    before it. Replacing them first, in one pass in C, keeps offsets and leaves the
    cluster-by-cluster work to the characters that need it. Built on first use, from the
    first two planes (where such characters are: full-width forms, mathematical letters and
    digits, enclosed ones), in about 20 ms; any other character goes the cluster way.
    """
    every = "".join(map(chr, itertools.chain(range(0xD800), range(0xE000, 0x20000))))
    table: dict[int, str] = {}
    for char in _CANDIDATES_1_1.findall(every):
        normal = " " if _SPACE.match(char) else unicodedata.normalize("NFKC", char)
        if len(normal) == 1 and normal != char and not _DIRTY_RUN.match(normal):
            table[ord(char)] = normal
    return table


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """A text and its normalised view, with the map from view offsets to the text's.

    ``text`` is the view: detection reads it. ``original`` is the text as given. Without a map
    (the usual case) every offset of the view is the same offset of the text: the two are the
    same string, or differ only character for character (a no-break space, a full-width
    letter).

    The map is a list of segments of the view, in order: segment ``k`` starts at view offset
    ``view_starts[k]`` and at original offset ``orig_starts[k]``; when ``orig_ends[k]`` is
    -1 it maps character for character, else every character of it maps to the whole
    original span ``[orig_starts[k], orig_ends[k])`` (one cluster).
    """

    original: str
    text: str
    view_starts: array[int] | None = None
    orig_starts: array[int] | None = None
    orig_ends: array[int] | None = None

    @property
    def is_identity(self) -> bool:
        """Whether every offset of the view is the same offset of the original."""
        return self.view_starts is None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the view's ``[start, end)``.

        From the original start of the view character at ``start`` to the original end of
        the one at ``end - 1``: removed characters between them are inside, and a character
        of a cluster brings the whole cluster. An empty span maps to an empty span.
        """
        if not 0 <= start <= end <= len(self.text):
            raise ValueError("span outside the view")
        if self.view_starts is None:
            return start, end
        if start == end:
            position = self._start_of(start) if start < len(self.text) else len(self.original)
            return position, position
        return self._start_of(start), self._end_of(end - 1)

    def _start_of(self, index: int) -> int:
        assert self.view_starts is not None  # noqa: S101 - only called with a map
        assert self.orig_starts is not None  # noqa: S101
        assert self.orig_ends is not None  # noqa: S101
        segment = bisect_right(self.view_starts, index) - 1
        if self.orig_ends[segment] == -1:
            return self.orig_starts[segment] + index - self.view_starts[segment]
        return self.orig_starts[segment]

    def _end_of(self, index: int) -> int:
        assert self.view_starts is not None  # noqa: S101 - only called with a map
        assert self.orig_starts is not None  # noqa: S101
        assert self.orig_ends is not None  # noqa: S101
        segment = bisect_right(self.view_starts, index) - 1
        if self.orig_ends[segment] == -1:
            return self.orig_starts[segment] + index - self.view_starts[segment] + 1
        return self.orig_ends[segment]


def normalize(text: str) -> NormalizedText:
    """``text``'s view for detection and the map back (see the module's docstring)."""
    if text.isascii() or (unicodedata.is_normalized("NFKC", text) and not _ODD.search(text)):
        return NormalizedText(text, text)
    return _Builder(text).build()


class _Builder:
    """Builds a view and its segments in one pass over the dirty stretches of a text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.parts: list[str] = []
        self.length = 0  # of the view so far
        self.view_starts: array[int] = array("q")
        self.orig_starts: array[int] = array("q")
        self.orig_ends: array[int] = array("q")
        self.shift: int | None = 0  # original minus view offset in the last segment, if 1:1

    def build(self) -> NormalizedText:
        text = self.text
        # one for one replacements first: the offsets stay, only the characters change
        swapped = text.translate(_one_for_one())
        done = 0  # offset (of both) up to which the view is built
        dirty = False
        for run in _DIRTY_RUN.finditer(swapped):
            dirty = True
            # the character before a dirty run is clean, but may compose with the run
            start = max(run.start() - 1, done)
            if start > done:
                self._same(done, swapped[done:start])
            position = start
            for cluster in _CLUSTER.findall(swapped, start, run.end()):
                normal, core = _normal_cluster(cluster)
                if normal == cluster or (len(normal) == 1 and core == 1):
                    self._same(position, normal)
                elif normal:
                    self._cluster(position, position + core, normal)
                position += len(cluster)
            done = run.end()
        if not dirty:  # nothing but one for one replacements, if any
            return NormalizedText(text, swapped)
        if done < len(swapped):
            self._same(done, swapped[done:])
        view = "".join(self.parts)
        if view == text:
            return NormalizedText(text, text)
        if len(self.view_starts) == 1 and self.orig_starts[0] == 0 and self.orig_ends[0] == -1:
            return NormalizedText(text, view)  # one for one throughout: offsets unchanged
        return NormalizedText(text, view, self.view_starts, self.orig_starts, self.orig_ends)

    def _same(self, origin: int, piece: str) -> None:
        """``piece`` (at ``origin`` in the text) goes into the view character for character."""
        shift = origin - self.length
        if shift != self.shift or not self.view_starts:
            self.view_starts.append(self.length)
            self.orig_starts.append(origin)
            self.orig_ends.append(-1)
            self.shift = shift
        self.parts.append(piece)
        self.length += len(piece)

    def _cluster(self, start: int, end: int, normal: str) -> None:
        """``normal``, all of whose characters map to the text's ``[start, end)``."""
        self.view_starts.append(self.length)
        self.orig_starts.append(start)
        self.orig_ends.append(end)
        self.shift = None
        self.parts.append(normal)
        self.length += len(normal)
