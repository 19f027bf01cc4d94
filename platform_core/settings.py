"""All of the platform's configuration in one pydantic-settings class.

Every field reads the environment variable of the same name (case-insensitive), so
``MONGODB_URI``, ``MONGODB_DRIVER`` and friends work as documented in the README.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DriverName = Literal["pymongo", "motor"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # --- database -------------------------------------------------------------------------
    mongodb_uri: str | None = Field(
        default=None,
        description="MongoDB connection string. Unset: the workbench starts an embedded SecantusDB.",
    )
    mongodb_db: str = Field(default="labs_db", description="Database name used by the platform.")
    mongodb_driver: DriverName = Field(
        default="pymongo",
        description="pymongo (native AsyncMongoClient, default) or motor (deprecated upstream).",
    )
    mongodb_max_pool_size: int = Field(default=50, ge=1, le=10_000)
    mongodb_min_pool_size: int = Field(default=0, ge=0, le=10_000)
    mongodb_max_connecting: int = Field(default=2, ge=1, le=1_000)
    mongodb_wait_queue_timeout_ms: int | None = Field(default=None, ge=1)
    mongodb_server_selection_timeout_ms: int = Field(default=5_000, ge=1, le=600_000)
    mongodb_appname: str = Field(default="workbench-platform")

    @field_validator("mongodb_uri")
    @classmethod
    def _uri_scheme(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("MONGODB_URI must start with mongodb:// or mongodb+srv://")
        return value

    @field_validator("mongodb_db")
    @classmethod
    def _db_name(cls, value: str) -> str:
        # MongoDB forbids these characters in database names; catching them here gives a
        # clear settings error instead of a driver traceback at first use.
        bad = set('/\\. "$*<>:|?\0')
        if not value or any(ch in bad for ch in value) or len(value) > 63:
            raise ValueError(f"invalid database name {value!r}")
        return value

    @model_validator(mode="after")
    def _pool_bounds(self) -> Settings:
        if self.mongodb_min_pool_size > self.mongodb_max_pool_size:
            raise ValueError(
                f"MONGODB_MIN_POOL_SIZE ({self.mongodb_min_pool_size}) exceeds "
                f"MONGODB_MAX_POOL_SIZE ({self.mongodb_max_pool_size})"
            )
        return self

    def pool_options(self) -> dict[str, object]:
        """Driver keyword arguments for the connection pool, as configured."""
        options: dict[str, object] = {
            "maxPoolSize": self.mongodb_max_pool_size,
            "minPoolSize": self.mongodb_min_pool_size,
            "maxConnecting": self.mongodb_max_connecting,
            "serverSelectionTimeoutMS": self.mongodb_server_selection_timeout_ms,
            "appname": self.mongodb_appname,
        }
        if self.mongodb_wait_queue_timeout_ms is not None:
            options["waitQueueTimeoutMS"] = self.mongodb_wait_queue_timeout_ms
        return options
