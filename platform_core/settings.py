"""All of the platform's configuration in one pydantic-settings class.

Every field reads the environment variable of the same name (case-insensitive), so
``MONGODB_URI``, ``MONGODB_DRIVER`` and friends work as documented in the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DriverName = Literal["pymongo", "motor"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # --- database -------------------------------------------------------------------------
    mongodb_uri: str | None = Field(
        default=None,
        description="MongoDB connection string. Unset: the workbench starts an embedded SecantusDB.",
    )
    mongodb_db: str = Field(default="labs_db", description="Database name used by the platform.")
    mongodb_driver: DriverName | None = Field(
        default=None,
        description="pymongo or motor. Unset: the 'driver' knob decides (pymongo unless "
        "TUNING=baseline); set: it overrides that knob.",
    )
    mongodb_max_pool_size: int = Field(default=50, ge=1, le=10_000)
    mongodb_min_pool_size: int = Field(default=10, ge=0, le=10_000)
    mongodb_max_connecting: int = Field(default=2, ge=1, le=1_000)
    mongodb_wait_queue_timeout_ms: int | None = Field(default=None, ge=1)
    mongodb_server_selection_timeout_ms: int = Field(default=5_000, ge=1, le=600_000)
    mongodb_appname: str = Field(default="workbench-platform")
    mongodb_actor_max_pool_size: int = Field(default=10, ge=1, le=10_000)
    mongodb_actor_min_pool_size: int = Field(default=1, ge=0, le=10_000)

    # --- platform -------------------------------------------------------------------------
    environment: Literal["development", "production", "test"] = Field(
        default="development",
        description="production refuses the default admin password and sets Secure cookies.",
    )
    data_dir: Path = Field(
        default=Path(".workbench"),
        description="Where the platform keeps its generated JWT secret, exports and caches.",
    )
    experiments_dir: Path | None = Field(
        default=None,
        description="Experiments folder; unset: the sample experiments shipped in the package.",
    )
    log_level: str = Field(default="INFO")

    # --- auth ------------------------------------------------------------------------------
    jwt_secret: str | None = Field(
        default=None,
        description="HS256 key. Unset: a random secret generated once and kept in DATA_DIR.",
    )
    jwt_lifetime_seconds: int = Field(default=24 * 3600, ge=60)
    admin_email: str = Field(default="admin@example.com")
    admin_password: str = Field(default="password123")
    enable_registration: bool = Field(default=True)
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)

    # --- authorisation -----------------------------------------------------------------------
    authz_cache_ttl_seconds: float = Field(default=300.0, ge=0)
    authz_cache_max_size: int = Field(default=1000, ge=1)

    # --- experiments ---------------------------------------------------------------------------
    experiment_config_cache_ttl_seconds: float = Field(default=300.0, ge=0)
    experiment_config_cache_max_size: int = Field(default=100, ge=1)
    actor_runtime: Literal["inprocess", "ray"] = Field(default="inprocess")
    max_upload_size_mb: int = Field(default=100, ge=1, le=2048)
    export_retention_hours: float = Field(default=24.0, gt=0)
    export_cleanup_interval_seconds: float = Field(default=6 * 3600.0, gt=0)
    export_dump_limit: int = Field(default=10_000, ge=1)

    # --- tuning knobs (platform_core.tuning) ---------------------------------------------------
    tuning: Literal["baseline", "optimized"] = Field(
        default="optimized", description="Preset for every knob: the before or the best variant."
    )
    knobs: str = Field(
        default="", description='Per-knob overrides, "name=variant,name=variant" (env KNOBS).'
    )

    # --- operability ---------------------------------------------------------------------------
    profiling_enabled: bool = Field(
        default=False, description="Allow ?profile=1 to return a pyinstrument profile of a request."
    )
    slow_command_threshold_ms: float = Field(
        default=100.0,
        ge=0,
        description="Knob slow_command_log=on: log DB commands at least this slow (ms).",
    )

    # --- edge: proxies, rate limits, event streams (platform_core.edge) ------------------------
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Peers whose X-Forwarded-For/-Proto are believed: IPs or CIDR networks, "
        "comma-separated or a JSON list. Empty: forwarded headers are ignored.",
    )
    rate_limits_enabled: bool = Field(
        default=True, description="Per-client limits on login, registration and exports."
    )
    sse_heartbeat_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="Heartbeat comment interval of SSE streams."
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _trusted_proxies(cls, value: Any) -> list[str]:
        from platform_core.proxies import parse_trusted_proxies

        return parse_trusted_proxies(value)

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

    @field_validator("knobs")
    @classmethod
    def _valid_knobs(cls, value: str) -> str:
        from platform_core.tuning.registry import parse_assignments

        parse_assignments(value)  # raises a ValueError naming the bad knob or variant
        return value

    def active_knobs(self) -> dict[str, str]:
        """Every knob's variant under this configuration (preset, then overrides)."""
        from platform_core.tuning.registry import parse_assignments, resolve

        overrides = parse_assignments(self.knobs)
        if self.mongodb_driver is not None:
            overrides["driver"] = self.mongodb_driver  # one source of truth: the knob
        return resolve(self.tuning, overrides)

    @property
    def driver(self) -> DriverName:
        """The driver in force (``MONGODB_DRIVER`` if set, else the ``driver`` knob)."""
        return self.knob("driver")  # type: ignore[return-value]

    def knob(self, name: str) -> str:
        from platform_core.tuning.registry import get_knob

        get_knob(name)
        return self.active_knobs()[name]

    @model_validator(mode="after")
    def _pool_bounds(self) -> Settings:
        if self.mongodb_min_pool_size > self.mongodb_max_pool_size:
            raise ValueError(
                f"MONGODB_MIN_POOL_SIZE ({self.mongodb_min_pool_size}) exceeds "
                f"MONGODB_MAX_POOL_SIZE ({self.mongodb_max_pool_size})"
            )
        return self

    @property
    def default_admin_password(self) -> bool:
        return self.admin_password == type(self).model_fields["admin_password"].default

    def pool_options(self) -> dict[str, object]:
        """Driver keyword arguments for the connection pool, as configured.

        Knob ``pool_size``: ``driver_default`` is what the reference's clients used before
        the report (the driver's own 100/0); ``tuned`` applies MONGODB_MAX/MIN_POOL_SIZE.
        """
        tuned = self.knob("pool_size") == "tuned"
        options: dict[str, object] = {
            "maxPoolSize": self.mongodb_max_pool_size if tuned else 100,
            "minPoolSize": self.mongodb_min_pool_size if tuned else 0,
            "maxConnecting": self.mongodb_max_connecting,
            "serverSelectionTimeoutMS": self.mongodb_server_selection_timeout_ms,
            "appname": self.mongodb_appname,
        }
        if self.mongodb_wait_queue_timeout_ms is not None:
            options["waitQueueTimeoutMS"] = self.mongodb_wait_queue_timeout_ms
        return options
