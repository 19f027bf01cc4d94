"""Experiment actors behind one interface: in-process (default) or Ray (optional extra).

An experiment may define ``ExperimentActor`` in ``actor.py``. The platform creates one
actor per slug at registration and hands routes a cached handle (the reference called
``ray.get_actor`` — a GCS lookup — on every request, spec 9). An actor is recreated when
its code or its scopes change (the reference's ``get_if_exists`` kept detached actors with
stale code and ``read_scopes`` until a delete, spec 2.18/8.13), and stopped on delete.

Constructor contract for ``ExperimentActor`` (keyword arguments; unknown ones may be
ignored with ``**kwargs``): ``slug``, ``write_scope``, ``read_scopes``, ``mongo_uri``,
``db_name``, and, in-process only, ``db`` (a ready :class:`ScopedDatabase`). An optional
async ``initialize()`` runs after creation and an optional ``shutdown()`` before removal.

Handles are called uniformly: ``await handle.call("method", *args, **kwargs)``.

Ray is imported lazily, only when ``ACTOR_RUNTIME=ray`` is selected; if it is not
installed the selection fails with a message saying how to install the extra.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

RAY_NAMESPACE = "platform_core"


class ActorRuntimeUnavailable(RuntimeError):
    """The selected actor runtime cannot be used (message says how to fix it)."""


@dataclass(frozen=True, slots=True)
class ActorSpec:
    """Everything that determines an actor instance; a change means a new instance."""

    slug: str
    actor_class: Any
    write_scope: str
    read_scopes: tuple[str, ...]
    code_fingerprint: str
    mongo_uri: str | None = None
    db_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        return (self.code_fingerprint, self.write_scope, self.read_scopes, self.db_name)


def code_fingerprint(folder: Path) -> str:
    """Hash of every ``.py`` file of an experiment (names, sizes and contents)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(folder)).encode())
        try:
            digest.update(path.read_bytes())
        except OSError:
            continue
    return digest.hexdigest()[:16]


class ActorHandle(Protocol):
    slug: str

    async def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any: ...


class ActorRuntime(Protocol):
    name: str

    async def ensure(self, spec: ActorSpec) -> ActorHandle: ...

    def get(self, slug: str) -> ActorHandle | None: ...

    async def stop(self, slug: str) -> bool: ...

    async def shutdown(self) -> None: ...


# ----------------------------------------------------------------------------------------
# In-process runtime
# ----------------------------------------------------------------------------------------
class InProcessHandle:
    """Calls methods of a local actor instance (sync or async)."""

    __slots__ = ("instance", "slug", "spec")

    def __init__(self, slug: str, instance: Any, spec: ActorSpec) -> None:
        self.slug = slug
        self.instance = instance
        self.spec = spec

    async def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        if method.startswith("_"):
            raise AttributeError(f"actor method {method!r} is private")
        result = getattr(self.instance, method)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


class InProcessActorRuntime:
    """One actor instance per slug in this process (the default)."""

    name = "inprocess"

    def __init__(self, db_factory: Callable[[ActorSpec], Any] | None = None) -> None:
        self._db_factory = db_factory
        self._handles: dict[str, InProcessHandle] = {}
        self.created = 0
        self.stopped = 0

    async def ensure(self, spec: ActorSpec) -> InProcessHandle:
        current = self._handles.get(spec.slug)
        if current is not None and current.spec.fingerprint == spec.fingerprint:
            return current
        if current is not None:
            await self.stop(spec.slug)
        kwargs: dict[str, Any] = {
            "slug": spec.slug,
            "write_scope": spec.write_scope,
            "read_scopes": list(spec.read_scopes),
            "mongo_uri": spec.mongo_uri,
            "db_name": spec.db_name,
        }
        if self._db_factory is not None:
            kwargs["db"] = self._db_factory(spec)
        instance = _construct(spec.actor_class, kwargs)
        handle = InProcessHandle(spec.slug, instance, spec)
        init = getattr(instance, "initialize", None)
        if callable(init):
            result = init()
            if inspect.isawaitable(result):
                await result
        self._handles[spec.slug] = handle
        self.created += 1
        return handle

    def get(self, slug: str) -> InProcessHandle | None:
        return self._handles.get(slug)

    async def stop(self, slug: str) -> bool:
        handle = self._handles.pop(slug, None)
        if handle is None:
            return False
        self.stopped += 1
        closer = getattr(handle.instance, "shutdown", None)
        if callable(closer):
            try:
                result = closer()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one broken actor must not block a delete or shutdown
                log.exception("actor %s: shutdown() failed", slug)
        return True

    async def shutdown(self) -> None:
        for slug in list(self._handles):
            await self.stop(slug)

    def stats(self) -> dict[str, Any]:
        return {"runtime": self.name, "actors": sorted(self._handles), "created": self.created,
                "stopped": self.stopped}  # fmt: skip


def _construct(cls: Any, kwargs: dict[str, Any]) -> Any:
    """Call ``cls`` with the keyword arguments its signature accepts."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return cls(**kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return cls(**kwargs)
    return cls(**{k: v for k, v in kwargs.items() if k in params})


# ----------------------------------------------------------------------------------------
# Ray runtime (optional)
# ----------------------------------------------------------------------------------------
def import_ray() -> Any:
    try:
        import ray  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ActorRuntimeUnavailable(
            "ACTOR_RUNTIME=ray was selected but the 'ray' package is not installed; install "
            "the optional extra (pip install 'tuning-workbench[ray]') or set "
            "ACTOR_RUNTIME=inprocess"
        ) from exc
    return ray


class RayHandle:
    __slots__ = ("actor", "slug", "spec")

    def __init__(self, slug: str, actor: Any, spec: ActorSpec) -> None:
        self.slug = slug
        self.actor = actor
        self.spec = spec

    async def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        if method.startswith("_"):
            raise AttributeError(f"actor method {method!r} is private")
        return await getattr(self.actor, method).remote(*args, **kwargs)


class RayActorRuntime:
    """Named Ray actors ``<slug>-actor``; handles cached per slug, versioned by fingerprint.

    Actors are not detached: they belong to this driver process and die with it, so no
    actor with stale code or scopes survives a restart (spec 2.18).
    """

    name = "ray"

    def __init__(self, ray_module: Any | None = None, *, address: str | None = None) -> None:
        self._ray = ray_module if ray_module is not None else import_ray()
        self._address = address
        self._handles: dict[str, RayHandle] = {}

    def _init(self) -> None:
        if not self._ray.is_initialized():
            self._ray.init(address=self._address, namespace=RAY_NAMESPACE,
                           ignore_reinit_error=True)  # fmt: skip

    async def ensure(self, spec: ActorSpec) -> RayHandle:
        current = self._handles.get(spec.slug)
        if current is not None and current.spec.fingerprint == spec.fingerprint:
            return current
        if current is not None:
            await self.stop(spec.slug)
        await asyncio.to_thread(self._init)
        remote_cls = self._ray.remote(spec.actor_class)
        actor = remote_cls.options(name=f"{spec.slug}-actor", namespace=RAY_NAMESPACE).remote(
            slug=spec.slug,
            write_scope=spec.write_scope,
            read_scopes=list(spec.read_scopes),
            mongo_uri=spec.mongo_uri,
            db_name=spec.db_name,
        )
        handle = RayHandle(spec.slug, actor, spec)
        if hasattr(spec.actor_class, "initialize"):
            await actor.initialize.remote()
        self._handles[spec.slug] = handle
        return handle

    def get(self, slug: str) -> RayHandle | None:
        return self._handles.get(slug)

    async def stop(self, slug: str) -> bool:
        handle = self._handles.pop(slug, None)
        if handle is None:
            return False
        try:
            self._ray.kill(handle.actor)
        except Exception:
            log.exception("killing the Ray actor of %s failed", slug)
        return True

    async def shutdown(self) -> None:
        for slug in list(self._handles):
            await self.stop(slug)

    def stats(self) -> dict[str, Any]:
        return {"runtime": self.name, "actors": sorted(self._handles)}


def make_actor_runtime(
    kind: str,
    *,
    db_factory: Callable[[ActorSpec], Any] | None = None,
    ray_address: str | None = None,
    ray_importer: Callable[[], Any] = import_ray,
) -> InProcessActorRuntime | RayActorRuntime:
    """The runtime for ``settings.actor_runtime``; ``"ray"`` needs the ``ray`` package."""
    if kind == "inprocess":
        return InProcessActorRuntime(db_factory)
    if kind == "ray":
        return RayActorRuntime(ray_importer(), address=ray_address)
    raise ValueError(f"unknown actor runtime {kind!r}: choose 'inprocess' or 'ray'")
