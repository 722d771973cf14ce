"""One choke point per concern: only guard/access imports casbin, only guard/crypto ciphers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "guard"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    ("prefix", "allowed_folder"),
    [
        ("casbin", "access"),
        ("pkcs11", "crypto"),
        ("cryptography.hazmat.primitives.ciphers", "crypto"),
        ("cryptography.hazmat.primitives.asymmetric.ed25519", "crypto"),
    ],
)
def test_only_one_capability_imports(prefix: str, allowed_folder: str) -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if any(m == prefix or m.startswith(prefix + ".") for m in imported_modules(path))
        and path.relative_to(PACKAGE).parts[0] != allowed_folder
    ]
    assert offenders == []
