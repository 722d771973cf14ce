r"""Incident-response runbooks: Markdown checklists in ``audit/runbooks/<name>.md``.

A runbook is a template per incident type; every incident carries one and ticks its steps. The
file name (without ``.md``) is the runbook's name, which rules name in their ``runbook:``
attribute. The format is plain Markdown, so the file reads well on its own::

    # Unauthorized access to customer data

    One short paragraph (or a few) saying when this runbook applies and what matters most.

    ## Detect
    - [ ] confirm-alert: Read the incident's evidence: `guard audit search --principal <id>`.
    - [ ] verify-chain: Check the trail has not been edited: `guard audit verify`
      (a step may go on over indented lines).

    ## Contain
    ...

- The first line is the title, ``# Title``; a summary paragraph follows (required).
- Then the six phases, each exactly once and in this order: ``## Detect``, ``## Contain``,
  ``## Eradicate``, ``## Recover``, ``## Notify``, ``## Learn`` (the NIST SP 800-61r3 /
  CSF 2.0 incident-response functions: detect, respond = contain + eradicate, recover; notify
  is the regulatory part of respond; learn is the "lessons learned" of improve).
- Each phase holds at least one step: ``- [ ] step-id: text``. The id is kebab-case, at most 64
  characters, unique within the runbook and stable: incidents record ticked steps by id, so an id
  that changes loses its ticks. Templates ship unticked (``[x]`` is refused).
- A step's text may continue on lines indented by at least two spaces. Blank lines are allowed
  anywhere; anything else inside a phase is an error.
- A step's ``links`` are the commands and endpoints written in backticks in its text:
  ```guard ...``` command lines and ```METHOD /path``` endpoints, in order, without repeats.

Every error names the file and the line: ``audit/runbooks/bulk-access.md:14: duplicate step id
'revoke-key' (first at line 9)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from guard.incidents.errors import RunbookError, StepNotFoundError

if TYPE_CHECKING:
    from pathlib import Path

#: The phases of every runbook, in order (NIST SP 800-61r3 / CSF 2.0).
PHASES: tuple[str, ...] = ("detect", "contain", "eradicate", "recover", "notify", "learn")
RUNBOOK_SUFFIX = ".md"
MAX_RUNBOOK_BYTES = 256 * 1024

_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_MAX_ID = 64
_TITLE = re.compile(r"#[ \t]+(?P<title>\S.*?)[ \t]*#*[ \t]*")
_HEADING = re.compile(r"#{1,6}(?:[ \t]+(?P<text>.*?))?[ \t]*#*[ \t]*")
_PHASE = re.compile(r"##[ \t]+(?P<phase>\S.*?)[ \t]*#*[ \t]*")
_ITEM = re.compile(r"[-*+][ \t]")
_STEP = re.compile(r"[-*+][ \t]+\[(?P<box>.)\][ \t]+(?P<id>[^:\s]+):[ \t]*(?P<text>.*?)[ \t]*")
_CONTINUATION = re.compile(r"(?: {2,}|\t)[ \t]*(?P<text>\S.*?)[ \t]*")
_CODE = re.compile(r"`([^`\n]+)`")
_ENDPOINT = re.compile(r"(?:GET|POST|PUT|PATCH|DELETE) /\S*")


@dataclass(frozen=True, slots=True)
class RunbookStep:
    """One checklist step of a runbook phase."""

    id: str
    phase: str
    text: str
    #: The commands (``guard ...``) and endpoints (``DELETE /v1/records/{record_id}``) it names.
    links: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Runbook:
    """A parsed runbook: its name (the file's stem), title, summary and steps in order."""

    name: str
    title: str
    summary: str
    steps: tuple[RunbookStep, ...]

    def phase(self, phase: str) -> tuple[RunbookStep, ...]:
        """The steps of one phase, in order."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r} (expected one of: {', '.join(PHASES)})")
        return tuple(step for step in self.steps if step.phase == phase)

    def step(self, step_id: str) -> RunbookStep:
        """The step with this id, or StepNotFoundError."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise StepNotFoundError(f"runbook {self.name!r} has no step {step_id!r}")

    @property
    def links(self) -> tuple[str, ...]:
        """Every command and endpoint the runbook links to, in order, without repeats."""
        return tuple(dict.fromkeys(link for step in self.steps for link in step.links))


def step_links(text: str) -> tuple[str, ...]:
    """The commands and endpoints in backticks in ``text``, in order, without repeats."""
    found = []
    for match in _CODE.finditer(text):
        code = " ".join(match.group(1).split())
        if code == "guard" or code.startswith("guard ") or _ENDPOINT.fullmatch(code):
            found.append(code)
    return tuple(dict.fromkeys(found))


@dataclass
class _OpenStep:
    id: str
    phase: str
    line: int
    parts: list[str]


class _Parser:
    """One pass over the lines; each method handles a kind of line and names it on error."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.title: str | None = None
        self.summary: list[list[str]] = []
        self.phase: str | None = None
        self.phase_line = 0
        self.phase_steps = 0
        self.seen_phases: list[str] = []
        self.steps: list[_OpenStep] = []
        self.step_lines: dict[str, int] = {}
        self.last_step: _OpenStep | None = None

    def error(self, line: int, message: str) -> RunbookError:
        return RunbookError(f"{self.source}:{line}: {message}")

    def feed(self, number: int, line: str) -> None:
        if self.title is None:
            self._title(number, line)
        elif self.phase is None and not line.startswith("#"):
            self._summary(number, line)
        elif line.startswith("#"):
            self._heading(number, line)
        else:
            self._phase_line(number, line)

    def _title(self, number: int, line: str) -> None:
        if not line.strip():
            return
        match = _TITLE.fullmatch(line)
        if match is None:
            raise self.error(number, "a runbook starts with its title: '# Title'")
        self.title = match.group("title")

    def _summary(self, number: int, line: str) -> None:
        if _STEP.fullmatch(line):
            raise self.error(number, "a step before the first phase ('## Detect')")
        if not line.strip():
            if self.summary and self.summary[-1]:
                self.summary.append([])
            return
        if not self.summary:
            self.summary.append([])
        self.summary[-1].append(line.strip())

    def _heading(self, number: int, line: str) -> None:
        match = _PHASE.fullmatch(line)
        if match is None:
            heading = _HEADING.fullmatch(line)
            shown = heading.group("text") if heading is not None else None
            raise self.error(
                number,
                f"unexpected heading {shown or line.strip()!r}: only the title ('# ...') and "
                f"the phases ('## Detect' ... '## Learn') are headings",
            )
        phase = match.group("phase").strip().lower()
        if phase not in PHASES:
            raise self.error(
                number,
                f"unknown phase {match.group('phase')!r} "
                f"(expected one of: {', '.join(p.capitalize() for p in PHASES)})",
            )
        if self.phase is None and not any(self.summary):
            raise self.error(number, "a summary paragraph must follow the title")
        self._close_phase()
        if phase in self.seen_phases:
            raise self.error(number, f"phase {phase.capitalize()!r} appears twice")
        expected = PHASES[len(self.seen_phases)]
        if phase != expected:
            raise self.error(
                number,
                f"missing phase {expected.capitalize()!r} before "
                f"{phase.capitalize()!r} (phases: {', '.join(p.capitalize() for p in PHASES)})",
            )
        self.seen_phases.append(phase)
        self.phase = phase
        self.phase_line = number
        self.phase_steps = 0
        self.last_step = None

    def _close_phase(self) -> None:
        if self.phase is not None and self.phase_steps == 0:
            raise self.error(self.phase_line, f"phase {self.phase.capitalize()!r} has no steps")

    def _phase_line(self, number: int, line: str) -> None:
        if not line.strip():
            return
        if _ITEM.match(line):
            self._step(number, line)
            return
        continuation = _CONTINUATION.fullmatch(line)
        if continuation is not None and self.last_step is not None:
            self.last_step.parts.append(continuation.group("text"))
            return
        raise self.error(number, "expected a step: '- [ ] step-id: text'")

    def _step(self, number: int, line: str) -> None:
        assert self.phase is not None  # noqa: S101 - only called inside a phase
        match = _STEP.fullmatch(line)
        if match is None:
            raise self.error(number, "malformed step: expected '- [ ] step-id: text'")
        if match.group("box") != " ":
            raise self.error(number, "a template's steps are unticked: '- [ ] step-id: text'")
        step_id = match.group("id")
        if not _NAME.fullmatch(step_id) or len(step_id) > _MAX_ID:
            raise self.error(
                number,
                f"step id {step_id!r} is not kebab-case (lower-case letters, digits and "
                f"hyphens, at most {_MAX_ID} characters)",
            )
        if step_id in self.step_lines:
            raise self.error(
                number,
                f"duplicate step id {step_id!r} (first at line {self.step_lines[step_id]})",
            )
        if not match.group("text"):
            raise self.error(number, f"step {step_id!r} has no text")
        self.step_lines[step_id] = number
        self.last_step = _OpenStep(step_id, self.phase, number, [match.group("text")])
        self.steps.append(self.last_step)
        self.phase_steps += 1

    def finish(self, last_line: int) -> Runbook:
        if self.title is None:
            raise self.error(max(last_line, 1), "empty runbook: expected '# Title'")
        if self.phase is None:
            if not any(self.summary):
                raise self.error(last_line, "a summary paragraph must follow the title")
            raise self.error(last_line, f"missing phase {PHASES[0].capitalize()!r}")
        self._close_phase()
        if len(self.seen_phases) < len(PHASES):
            missing = ", ".join(p.capitalize() for p in PHASES[len(self.seen_phases) :])
            raise self.error(last_line, f"missing phase(s) at the end: {missing}")
        steps = []
        for step in self.steps:
            text = " ".join(step.parts)
            steps.append(RunbookStep(step.id, step.phase, text, step_links(text)))
        summary = "\n\n".join(" ".join(paragraph) for paragraph in self.summary if paragraph)
        return Runbook(self.name, self.title, summary, tuple(steps))


def parse_runbook(text: str, *, name: str, source: str | None = None) -> Runbook:
    """Parse one runbook's Markdown; RunbookError names ``source`` (default: the name) and line."""
    where = source or name
    if not _NAME.fullmatch(name) or len(name) > _MAX_ID:
        raise RunbookError(
            f"{where}: the runbook name {name!r} is not kebab-case (lower-case letters, digits "
            f"and hyphens, at most {_MAX_ID} characters)"
        )
    parser = _Parser(name, where)
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        parser.feed(number, line.rstrip())
    return parser.finish(len(lines))


def load_runbook(path: Path) -> Runbook:
    """Read and parse one runbook file; its name is the file's stem."""
    try:
        size = path.stat().st_size
        if size > MAX_RUNBOOK_BYTES:
            raise RunbookError(f"{path}: larger than {MAX_RUNBOOK_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RunbookError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise RunbookError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    return parse_runbook(text, name=path.name.removesuffix(RUNBOOK_SUFFIX), source=str(path))


def load_runbooks(directory: Path) -> dict[str, Runbook]:
    """Every ``*.md`` runbook directly in ``directory``, by name; RunbookError names file, line."""
    if not directory.is_dir():
        raise RunbookError(f"{directory}: no such directory of runbooks")
    return {
        runbook.name: runbook
        for runbook in (load_runbook(path) for path in sorted(directory.glob(f"*{RUNBOOK_SUFFIX}")))
    }
