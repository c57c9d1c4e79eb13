"""Configuration from the environment and ``.env`` (see ``.env.example`` for every key)."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All settings; each field reads the environment variable of the same name in capitals."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", protected_namespaces=()
    )

    discord_token: SecretStr | None = Field(default=None, description="Bot token.")
    database_path: Path = Path("data/moviebot.db")
    model_path: Path = Path("models/model.joblib")
    movielens_source: str = "ml-latest-small"
    data_dir: Path = Path("data")
    refit_interval_minutes: float = Field(default=60.0, ge=0)
    refit_min_new_ratings: int = Field(default=1, ge=0)
    dev_guild_id: int | None = None
    log_level: str = "INFO"
    command_cooldown_seconds: float = Field(default=10.0, ge=0)
    command_cooldown_burst: int = Field(default=5, ge=1)
    stats_min_members: int = Field(default=3, ge=1)
    movie_night_lobby_minutes: float = Field(default=2.0, gt=0)
    movie_night_vote_hours: float = Field(default=6.0, gt=0)
    movie_night_check_seconds: float = Field(default=30.0, gt=0)
    import_cooldown_minutes: float = Field(default=60.0, ge=0)

    @field_validator("discord_token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("dev_guild_id", mode="before")
    @classmethod
    def _blank_guild_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in logging.getLevelNamesMapping():
            raise ValueError(f"unknown log level {value!r}")
        return level

    @property
    def has_token(self) -> bool:
        """Return True when a Discord token is configured."""
        return self.discord_token is not None and bool(self.discord_token.get_secret_value())
