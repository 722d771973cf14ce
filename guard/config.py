"""Settings: one object, read from the environment (prefix ``GUARD_``) with embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The repository root when running from a checkout; the default place for policies/ and var/.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "guard"


class Settings(BaseSettings):
    """guard's configuration. Every field can be set as ``GUARD_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="GUARD_", extra="forbid")

    env: Literal["development", "production"] = "development"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    policies_dir: Path = PROJECT_ROOT / "policies"
    #: Local key material (git-ignored): in development guard creates its redaction key here.
    keys_dir: Path = PROJECT_ROOT / "keys"
    cache_dir: Path = Field(default_factory=_default_cache_dir)

    #: spaCy pipeline: the pinned default, another installed spaCy package, or a model directory.
    nlp_model: str = "en_core_web_sm"

    #: Tenant secret for pseudonyms and reversible tokens in development. Production deployments
    #: set it (or, later, the keyring does); an unset key in production is a start-up error.
    redaction_key: SecretStr | None = None

    #: Texts longer than this are rejected rather than analysed (bytes of UTF-8).
    max_text_bytes: int = Field(default=1_000_000, gt=0)

    @property
    def model_dir(self) -> Path:
        """Where ``guard models install`` extracts pinned NLP models."""
        return self.cache_dir / "models"


def get_settings() -> Settings:
    """Read settings from the environment now (tests change the environment between calls)."""
    return Settings()
