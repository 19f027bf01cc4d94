"""Actor runtimes: in-process default, Ray selection (lazy, clear error when missing)."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI

from platform_core.app import create_app
from platform_core.experiments import ExperimentService
from platform_core.experiments.actors import (
    ActorRuntimeUnavailable,
    ActorSpec,
    InProcessActorRuntime,
    RayActorRuntime,
    import_ray,
    make_actor_runtime,
)
from platform_core.settings import Settings


class Counter:
    instances: ClassVar[list[Counter]] = []

    def __init__(self, *, slug: str, read_scopes: list[str], db: Any = None) -> None:
        self.slug, self.read_scopes, self.db = slug, read_scopes, db
        self.ready = self.closed = False
        Counter.instances.append(self)

    async def initialize(self) -> None:
        self.ready = True

    def shutdown(self) -> None:
        self.closed = True

    async def add(self, a: int, b: int = 1) -> int:
        return a + b

    def sync_echo(self, value: str) -> str:
        return value


def spec(scopes: tuple[str, ...] = ("shop",), code: str = "c1") -> ActorSpec:
    return ActorSpec(slug="shop", actor_class=Counter, write_scope="shop", read_scopes=scopes,
                     code_fingerprint=code)  # fmt: skip


@pytest.mark.asyncio
async def test_inprocess_runtime_lifecycle() -> None:
    Counter.instances.clear()
    runtime = InProcessActorRuntime(db_factory=lambda s: f"db:{s.write_scope}")
    first = await runtime.ensure(spec())
    assert first.instance.ready and first.instance.db == "db:shop"
    assert await first.call("add", 2, b=3) == 5 and await first.call("sync_echo", "x") == "x"
    assert await runtime.ensure(spec()) is first  # unchanged: cached handle
    assert runtime.get("shop") is first
    second = await runtime.ensure(spec(scopes=("shop", "other")))  # scopes changed
    assert (
        second is not first
        and first.instance.closed
        and second.instance.read_scopes == ["shop", "other"]
    )
    third = await runtime.ensure(spec(scopes=("shop", "other"), code="c2"))  # code changed
    assert third is not second
    with pytest.raises(AttributeError):
        await third.call("__init__")
    assert await runtime.stop("shop") is True and await runtime.stop("shop") is False
    assert runtime.stats()["created"] == 3


def test_ray_selection_is_lazy_and_explains_a_missing_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert isinstance(make_actor_runtime("inprocess"), InProcessActorRuntime)
    monkeypatch.setitem(sys.modules, "ray", None)  # "not installed" even where it is
    with pytest.raises(ActorRuntimeUnavailable, match=r"pip install .*\[ray\]"):
        import_ray()
    with pytest.raises(ActorRuntimeUnavailable):
        make_actor_runtime("ray")
    with pytest.raises(ValueError, match="unknown actor runtime"):
        make_actor_runtime("threads")


def test_service_refuses_ray_when_missing(
    monkeypatch: pytest.MonkeyPatch, mongodb_uri: str
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    app = create_app(Settings(mongodb_uri=mongodb_uri, actor_runtime="ray", environment="test"))
    with pytest.raises(ActorRuntimeUnavailable, match="ACTOR_RUNTIME=ray"):
        ExperimentService(app)


class FakeRay:
    """Just enough of the ray API for the runtime's bookkeeping (not Ray itself)."""

    def __init__(self) -> None:
        self.initialised = False
        self.killed: list[Any] = []

    def is_initialized(self) -> bool:
        return self.initialised

    def init(self, **kwargs: Any) -> None:
        self.initialised = True
        self.init_kwargs = kwargs

    def kill(self, actor: Any) -> None:
        self.killed.append(actor)

    def remote(self, cls: Any) -> Any:
        ray = self

        class Remote:
            def options(self, **opts: Any) -> Any:
                ray.options = opts
                return self

            def remote(self, **kwargs: Any) -> Any:
                return FakeActor(cls(**{k: v for k, v in kwargs.items()
                                        if k in ("slug", "read_scopes")}))  # fmt: skip

        return Remote()


class FakeActor:
    def __init__(self, instance: Any) -> None:
        self.instance = instance

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.instance, name)

        class Method:
            async def remote(self, *args: Any, **kwargs: Any) -> Any:
                result = method(*args, **kwargs)
                return await result if hasattr(result, "__await__") else result

        return Method()


@pytest.mark.asyncio
async def test_ray_runtime_bookkeeping_with_a_fake_ray() -> None:
    ray = FakeRay()
    runtime = RayActorRuntime(ray)
    handle = await runtime.ensure(spec())
    assert ray.initialised and ray.init_kwargs["namespace"] == "platform_core"
    assert ray.options["name"] == "shop-actor"
    assert await handle.call("add", 1) == 2
    assert await runtime.ensure(spec()) is handle
    await runtime.ensure(spec(code="c2"))
    assert len(ray.killed) == 1
    await runtime.shutdown()
    assert len(ray.killed) == 2 and runtime.get("shop") is None


@pytest.mark.asyncio
async def test_service_recreates_actors_only_when_needed(app: FastAPI) -> None:
    service = app.state.experiment_service
    created = service.actors.stats()["created"]
    assert set(service.actors.stats()["actors"]) == {"analytics", "catalog", "click_tracker"}
    await service.register("catalog")
    assert service.actors.stats()["created"] == created
    await app.state.db.experiments_config.update_one(
        {"slug": "catalog"}, {"$set": {"data_scope": ["self", "click_tracker"]}}
    )
    await service.register("catalog")
    assert service.actors.stats()["created"] == created + 1
    assert service.actors.get("catalog").instance.read_scopes == ["catalog", "click_tracker"]
