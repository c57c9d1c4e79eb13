"""Configuration from the environment and ``.env`` (see ``.env.example`` for every key)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_REGULARIZATION = 1e6
"""Largest MODEL_ALPHA or MODEL_FOLD_IN_REG accepted: far beyond any useful value (the tuning's
ladders stop at 1 and 100), far short of overflowing when scaled by the number of movies."""


def regularization(text: str) -> float:
    """Parse a number from 0 to :data:`MAX_REGULARIZATION`; ValueError (a clear one) otherwise."""
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not (0 <= number <= MAX_REGULARIZATION):  # also refuses nan
        raise ValueError(f"expected a number from 0 to {MAX_REGULARIZATION:,.0f}, got {text!r}")
    return number


def _auto_or_regularization(value: object) -> str:
    """Return ``auto`` or a valid :func:`regularization` as text."""
    text = str(value).strip().lower()
    if text != "auto":
        try:
            regularization(text)
        except ValueError:
            raise ValueError(
                f"expected auto or a number from 0 to {MAX_REGULARIZATION:,.0f}, got {value!r}"
            ) from None
    return text


class Settings(BaseSettings):
    """All settings; each field reads the environment variable of the same name in capitals."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", protected_namespaces=()
    )

    discord_token: SecretStr | None = Field(default=None, description="Bot token.")
    database_path: Path = Path("data/moviebot.db")
    database_url: SecretStr | None = Field(
        default=None, description="sqlite:///path.db or postgresql://user:password@host/db"
    )
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
    model_components: str = "auto"
    model_alpha: str = "auto"
    model_max_iter: str = "auto"
    model_blend_below: str = "auto"
    model_fold_in_reg: str = "auto"
    shard_count: int | None = Field(default=None, ge=1, le=10_000)
    shard_ids: str = ""

    @field_validator("discord_token", "database_url", "shard_count", "dev_guild_id", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """An empty ``KEY=`` line in ``.env`` means the optional setting is not set."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _known_store(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        from bot.db import StorageError, is_postgresql, sqlite_path

        url = value.get_secret_value()
        if is_postgresql(url):
            return value
        if not url.lower().startswith("sqlite:"):
            raise ValueError("expected a sqlite:/// or postgresql:// URL")
        try:
            sqlite_path(url)
        except StorageError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("shard_ids")
    @classmethod
    def _shard_list(cls, value: str) -> str:
        text = str(value).replace(" ", "")
        if text and not all(part.isascii() and part.isdigit() for part in text.split(",")):
            raise ValueError(
                f"expected shard numbers separated by commas (e.g. 0,1), got {value!r}"
            )
        return text

    @model_validator(mode="after")
    def _one_database(self) -> Settings:
        if self.database_url is None:
            return self
        url = self.database_url.get_secret_value()
        if "database_path" in self.model_fields_set:
            from bot.db import is_postgresql, sqlite_path

            if is_postgresql(url) or sqlite_path(url).resolve() != self.database_path.resolve():
                raise ValueError(
                    "DATABASE_URL and DATABASE_PATH name different databases; set only one "
                    "(DATABASE_URL wins in new set-ups)"
                )
        return self

    @model_validator(mode="after")
    def _shards_in_range(self) -> Settings:
        ids = self.shard_id_list()
        if ids and self.shard_count is None:
            raise ValueError("SHARD_IDS needs SHARD_COUNT (the total number of shards)")
        if self.shard_count is not None and any(i >= self.shard_count for i in ids):
            raise ValueError(f"SHARD_IDS must be below SHARD_COUNT ({self.shard_count})")
        return self

    def shard_id_list(self) -> list[int]:
        """Return the shards this process runs (empty: all of them)."""
        return sorted({int(part) for part in self.shard_ids.split(",") if part})

    @property
    def database(self) -> str | Path:
        """Return the database: the DATABASE_URL if set, else the DATABASE_PATH file."""
        if self.database_url is None:
            return self.database_path
        return self.database_url.get_secret_value()

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in logging.getLevelNamesMapping():
            raise ValueError(f"unknown log level {value!r}")
        return level

    @field_validator("model_components", "model_max_iter", "model_blend_below")
    @classmethod
    def _auto_or_count(cls, value: str) -> str:
        text = str(value).strip().lower()
        if text != "auto" and not (text.isascii() and text.isdigit() and 0 < int(text) < 10_000):
            raise ValueError(f"expected auto or a whole number from 1 to 9999, got {value!r}")
        return text

    @field_validator("model_alpha", "model_fold_in_reg")
    @classmethod
    def _auto_or_strength(cls, value: str) -> str:
        return _auto_or_regularization(value)

    def model_params(self) -> tuple[dict[str, Any], bool]:
        """Return the pinned NMF parameters and whether refits tune the rest.

        Refits tune ``n_components`` and ``alpha`` when both are ``auto``; a number pins that
        parameter (and a pinned one turns tuning off, the other taking its default).
        ``blend_below`` and ``fold_in_reg`` change only scoring: a pinned one is kept while the
        tuning chooses the rest.
        """
        params: dict[str, Any] = {}
        if self.model_components != "auto":
            params["n_components"] = int(self.model_components)
        if self.model_alpha != "auto":
            params["alpha"] = float(self.model_alpha)
        if self.model_max_iter != "auto":
            params["max_iter"] = int(self.model_max_iter)
        if self.model_blend_below != "auto":
            params["blend_below"] = int(self.model_blend_below)
        if self.model_fold_in_reg != "auto":
            params["fold_in_reg"] = float(self.model_fold_in_reg)
        tune = self.model_components == "auto" and self.model_alpha == "auto"
        return params, tune

    @property
    def has_token(self) -> bool:
        """Return True when a Discord token is configured."""
        return self.discord_token is not None and bool(self.discord_token.get_secret_value())
