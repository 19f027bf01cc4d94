"""Run the platform under uvicorn (``workbench serve`` calls :func:`run_server`)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from platform_core.settings import Settings

FACTORY = "platform_core.server:app_from_environment"
# uvicorn waits for open responses before the lifespan shutdown; an admin event stream
# (/admin/api/*/stream) never ends by itself, so bound the wait (then it is cancelled).
GRACEFUL_SHUTDOWN_SECONDS = 10


class ServerConfigError(ValueError):
    """The server cannot run with these arguments (message says why)."""


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def settings_to_environment(settings: Settings) -> dict[str, str | None]:
    """Environment variables that make ``Settings()`` in a worker equal ``settings``.

    Every field reads the variable of its own (upper-cased) name; a ``None`` value means
    "remove this variable" (an empty string would not parse back to ``None`` for paths).
    """
    env: dict[str, str | None] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        key = name.upper()
        if value is None:
            env[key] = None
        elif isinstance(value, bool):
            env[key] = "true" if value else "false"
        elif isinstance(value, Path):
            env[key] = str(value.resolve())
        elif isinstance(value, (str, int, float)):
            env[key] = str(value)
        else:  # lists/dicts (e.g. knob maps added later) travel as JSON
            import json

            env[key] = json.dumps(value)
    return env


def app_from_environment():  # type: ignore[no-untyped-def]
    """uvicorn ``--factory`` entry point for workers: settings come from the environment."""
    from platform_core.app import create_app
    from platform_core.observability.middleware import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def run_server(
    settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1
) -> None:
    """Serve the platform with uvicorn until interrupted (blocks).

    Contract:

    * ``settings.mongodb_uri`` must point at a running server: this function starts no
      database (``workbench serve`` starts an embedded one first when ``MONGODB_URI`` is
      unset, and must stop it only *after* this returns: stopping the DB first makes
      uvicorn's shutdown wait on server selection).
    * ``host`` must be a loopback address (``127.0.0.1``, ``::1``, ``localhost``); anything
      else raises :class:`ServerConfigError` before binding. The platform runs uploaded
      experiment code in-process and is not hardened for exposure.
    * ``workers == 1``: one process, the app built from ``settings`` directly.
      ``workers > 1``: uvicorn's multi-process mode with the import-string factory
      :data:`FACTORY`; ``settings`` reach the workers through environment variables
      (:func:`settings_to_environment`, set in this process before spawning). Each worker
      has its own client, authz cache and loop; with ``JWT_SECRET`` unset they share the
      secret file in ``DATA_DIR``.
    * Startup failures (database unreachable, production with the default admin password)
      raise or exit non-zero with a one-line reason; the password is never printed.
    * Forwarded headers are not trusted (``proxy_headers=False``): the app applies them
      itself, only from ``TRUSTED_PROXIES`` (:mod:`platform_core.proxies`).
    * Shutdown waits at most :data:`GRACEFUL_SHUTDOWN_SECONDS` for open responses.
    """
    import uvicorn

    if not is_loopback_host(host):
        raise ServerConfigError(
            f"refusing to listen on {host!r}: only loopback addresses (127.0.0.1, ::1, "
            "localhost) are allowed; put a reverse proxy in front for remote access"
        )
    if not 1 <= workers <= 64:
        raise ServerConfigError(f"workers must be between 1 and 64, got {workers}")
    if not settings.mongodb_uri:
        raise ServerConfigError("settings.mongodb_uri is not set: start a database first")

    from platform_core.app import create_app
    from platform_core.authz.roles import check_startup_safety
    from platform_core.observability.middleware import configure_logging

    check_startup_safety(settings)  # fail before spawning anything
    configure_logging(settings.log_level)
    common = {
        "host": host,
        "port": port,
        "log_level": settings.log_level.lower(),
        "lifespan": "on",
        "proxy_headers": False,
        "server_header": False,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "log_config": None,  # keep our request-id log format
    }
    if workers == 1:
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
        return
    for key, value in settings_to_environment(settings).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    uvicorn.run(FACTORY, factory=True, workers=workers, **common)  # type: ignore[arg-type]
