"""Model resolution: a missing or broken model is a clear error, never a download."""

from __future__ import annotations

import hashlib
import zipfile
from typing import TYPE_CHECKING

import pytest

from guard.config import Settings
from guard.detection.model import (
    PinnedModel,
    extract_verified_wheel,
    load_pipeline,
    model_status,
)
from guard.errors import ModelNotAvailableError

if TYPE_CHECKING:
    from pathlib import Path


def test_when_the_pinned_model_is_missing_then_loading_says_how_to_install_it(
    tmp_path: Path,
) -> None:
    settings = Settings(cache_dir=tmp_path)
    assert not model_status(settings).installed
    with pytest.raises(ModelNotAvailableError, match="guard models install"):
        load_pipeline(settings)


def test_when_the_model_names_an_unknown_package_then_the_error_says_so(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path, nlp_model="xx_no_such_model")
    with pytest.raises(ModelNotAvailableError, match="neither a pinned model"):
        load_pipeline(settings)


def test_when_a_model_directory_is_broken_then_loading_fails_clearly(tmp_path: Path) -> None:
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "config.cfg").write_text("[nlp]\nlang = \n", encoding="utf-8")
    (broken / "meta.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ModelNotAvailableError, match="could not be loaded"):
        load_pipeline(Settings(nlp_model=str(broken)))


def _fake_wheel(tmp_path: Path) -> tuple[Path, PinnedModel]:
    wheel = tmp_path / "fake_model-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("fake_model/fake_model-1.0.0/config.cfg", "[nlp]\n")
        archive.writestr("fake_model/fake_model-1.0.0/meta.json", "{}")
        archive.writestr("fake_model/__init__.py", "")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return wheel, PinnedModel("fake", "1.0.0", "fake-model", digest)


def test_when_the_wheel_matches_its_hash_then_its_data_directory_is_extracted(
    tmp_path: Path,
) -> None:
    wheel, pinned = _fake_wheel(tmp_path)
    target = tmp_path / "models" / "fake-1.0.0"
    extract_verified_wheel(wheel, pinned, target)
    assert sorted(p.name for p in target.iterdir()) == ["config.cfg", "meta.json"]


def test_when_the_wheel_does_not_match_its_hash_then_nothing_is_installed(tmp_path: Path) -> None:
    wheel, pinned = _fake_wheel(tmp_path)
    tampered = PinnedModel(pinned.name, pinned.version, pinned.distribution, "0" * 64)
    target = tmp_path / "models" / "fake-1.0.0"
    with pytest.raises(ModelNotAvailableError, match="failed verification"):
        extract_verified_wheel(wheel, tampered, target)
    assert not target.exists()


def test_the_detection_pipeline_keeps_only_tok2vec_and_ner(settings: Settings) -> None:
    assert load_pipeline(settings).pipe_names == ["tok2vec", "ner"]
