"""Reading the YAML files under ``policies/``: one place for the I/O and syntax errors.

Each capability validates its own file's content with pydantic; this module only turns a
missing, unreadable or malformed file into a PolicyError that names the file and line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from guard.errors import PolicyError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from pydantic import ValidationError


def read_policy_yaml(path: Path) -> Any:  # noqa: ANN401 - YAML is untyped until validated
    """The parsed content of a policy file, or a PolicyError naming the file (and line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PolicyError(f"{path}: not valid YAML{where}") from None


def describe_validation_error(
    source: object,
    exc: ValidationError,
    *,
    where: Callable[[Sequence[int | str]], str] | None = None,
    prefix: str = "",
) -> str:
    """Every problem pydantic found in a policy, as ``<source>: <where>: <what>; ...``.

    ``where`` turns an error's location into the words that name the entry (e.g. a rule by its
    id); by default the location's parts joined with dots.
    """
    problems = []
    for error in exc.errors():
        loc = error["loc"]
        place = where(loc) if where is not None else ".".join(str(part) for part in loc)
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{prefix}{place or '(top level)'}: {message}")
    return f"{source}: " + "; ".join(problems)
