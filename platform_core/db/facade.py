"""``ExperimentDB``: the convenience facade experiments use (PLATFORM_SPEC 2.8), fixed.

``ExperimentDB(scoped_db).<name>`` or ``.collection(name)`` gives a ``Collection`` whose
methods are the scoped collection's, unchanged. Unlike the reference, ``find_one`` and
``count_documents`` do not swallow errors (a database error is not "no document"), and
there is no ``raw``/``database`` escape hatch.

Knob ``slots`` (report 9.1): both classes exist in a plain and a ``__slots__`` flavour;
:func:`facade_classes` picks one pair. A request builds a handful of these, so the
expected gain is bytes per instance, not time; the study measures both.
"""

from __future__ import annotations

from typing import Any

from platform_core.db.scoped import ScopedCollection, ScopedDatabase

_METHODS = (
    "find_one", "find", "insert_one", "insert_many", "update_one", "update_many",
    "delete_one", "delete_many", "count_documents", "aggregate", "distinct",
)  # fmt: skip


class _CollectionBase:
    __slots__ = ()  # subclasses decide: plain ones get a __dict__, slotted ones do not

    def __init__(self, scoped: ScopedCollection) -> None:
        self._scoped = scoped

    def __getattr__(self, name: str) -> Any:
        # Only the scoped collection's public query methods pass through: the facade
        # cannot hand out more than the scoped layer allows.
        if name in _METHODS:
            return getattr(self._scoped, name)
        raise AttributeError(f"Collection has no attribute {name!r}")

    @property
    def name(self) -> str:
        return self._scoped.name


class _ExperimentDBBase:
    __slots__ = ()
    _collection_class: type[_CollectionBase]

    def __init__(self, scoped: ScopedDatabase) -> None:
        self._scoped = scoped
        self._collections: dict[str, _CollectionBase] = {}

    def collection(self, name: str) -> _CollectionBase:
        found = self._collections.get(name)
        if found is None:
            found = self._collection_class(self._scoped.collection(name))
            self._collections[name] = found
        return found

    def __getattr__(self, name: str) -> _CollectionBase:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.collection(name)

    @property
    def write_scope(self) -> str:
        return self._scoped.write_scope


class PlainCollection(_CollectionBase):
    pass


class SlottedCollection(_CollectionBase):
    __slots__ = ("_scoped",)


class PlainExperimentDB(_ExperimentDBBase):
    _collection_class = PlainCollection


class SlottedExperimentDB(_ExperimentDBBase):
    __slots__ = ("_collections", "_scoped")
    _collection_class = SlottedCollection


def facade_classes(variant: str = "slots") -> tuple[type[_ExperimentDBBase], type[_CollectionBase]]:
    if variant == "slots":
        return SlottedExperimentDB, SlottedCollection
    if variant == "plain":
        return PlainExperimentDB, PlainCollection
    raise ValueError(f"unknown slots variant {variant!r}: 'plain' or 'slots'")


def experiment_db(scoped: ScopedDatabase, variant: str = "slots") -> _ExperimentDBBase:
    return facade_classes(variant)[0](scoped)
