"""Reading the YAML files under ``policies/``: one place for the I/O and syntax errors.

Each capability validates its own file's content with pydantic; this module only turns a
missing, unreadable or malformed file into a PolicyError that names the file and line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from guard.errors import PolicyError

if TYPE_CHECKING:
    from pathlib import Path


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
