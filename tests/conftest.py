"""Shared fixtures: settings isolated from the developer's environment, one loaded detector."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import pytest
import structlog

from guard.config import PROJECT_ROOT, Settings
from guard.detection.engine import Detector

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DATA_DIR = PROJECT_ROOT.parent / "shared" / "data" / "pii"


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Repository policies, keys in a temporary folder, the installed pinned model."""
    return Settings(keys_dir=tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def detector(settings: Settings) -> Iterator[Detector]:
    """One detector for the whole run: loading the model takes a second."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*\[W095\].*")
        yield Detector(settings=settings)


@pytest.fixture
def data_dir() -> Path:
    """The labeled development sets, when ../shared is beside the checkout."""
    if not DATA_DIR.is_dir():
        pytest.skip("../shared/data/pii is not beside this checkout")
    return DATA_DIR


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """The CLI configures structlog for its process; give every test the defaults back."""
    yield
    structlog.reset_defaults()
