"""``manifest.json`` of an experiment: pydantic models and validation (PLATFORM_SPEC 5).

Why pydantic and not JSON Schema (the reference used JSON Schema with a result cache and a
sync wrapper that ran ``asyncio.run`` in a thread pool per call, spec 9): validation is a
pure, microsecond-scale function here, so it is called directly wherever a manifest enters
the platform (folder seeding, save-manifest, upload) and gives per-field messages.

Rules beyond the reference, on purpose:

* ``slug`` must match ``^[a-z0-9_]+$`` (the reference allowed ``-``, which then could not be
  imported, and did not check ``slug_id`` at all, spec 8.4);
* ``data_scope`` entries are ``"self"`` or valid slugs;
* ``managed_indexes`` collection names are valid collection base names and index names are
  plain identifiers, so nothing from a manifest reaches the driver unchecked.

Unknown top-level keys are allowed (kept as extra fields); ``auth_policy`` is strict.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from platform_core.db.slugs import validate_collection_base_name, validate_slug

Status = Literal["active", "draft", "archived", "inactive"]
IndexType = Literal[
    "regular", "vectorSearch", "search", "text", "geospatial", "ttl", "partial", "hybrid"
]
CustomAction = Literal["access", "read", "write", "admin"]

_INDEX_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
_PERMISSION_RE = re.compile(r"^[a-z0-9_:]+$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_KEY_DIRECTIONS: tuple[Any, ...] = (1, -1, "text", "2dsphere", "2d", "geoHaystack", "hashed")
MAX_MANIFEST_BYTES = 256 * 1024


class ManifestError(ValueError):
    """A manifest failed validation; ``errors`` lists ``{"field", "message"}`` per problem."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10])
        super().__init__(f"invalid manifest: {summary}")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class AuthPolicy(BaseModel):
    """Per-experiment access rules (decision order in ``experiments.access``)."""

    model_config = ConfigDict(extra="forbid")

    required: bool = True
    allow_anonymous: bool = False
    allowed_roles: list[str] = Field(default_factory=list)
    allowed_users: list[str] = Field(default_factory=list)
    denied_users: list[str] = Field(default_factory=list)
    required_permissions: list[str] = Field(default_factory=list)
    custom_resource: str | None = None
    custom_actions: list[CustomAction] = Field(default_factory=lambda: ["access"])
    owner_can_access: bool = True

    @field_validator("required_permissions")
    @classmethod
    def _permissions(cls, value: list[str]) -> list[str]:
        for perm in value:
            if not _PERMISSION_RE.fullmatch(perm) or perm.count(":") > 1 or perm.endswith(":"):
                raise ValueError(f"{perm!r} is not 'resource:action' or 'action'")
        return value

    @field_validator("custom_resource")
    @classmethod
    def _resource(cls, value: str | None) -> str | None:
        if value is not None and not _PERMISSION_RE.fullmatch(value):
            raise ValueError("must match ^[a-z0-9_:]+$")
        return value

    @field_validator("allowed_users", "denied_users")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value]


class OAuthProvider(_Lenient):
    name: Literal["google", "github", "microsoft", "custom"]
    client_id: str | None = None
    client_secret: str | None = None
    redirect_uri: str | None = None


class DemoUser(_Lenient):
    email: str
    password: str | None = None
    role: str | None = None
    auto_create: bool = True
    link_to_platform: bool = False
    extra_data: dict[str, Any] = Field(default_factory=dict)


class SubAuth(_Lenient):
    """Experiment-level auth settings; enforced by :mod:`platform_core.experiments.sub_auth`."""

    enabled: bool = False
    strategy: Literal["experiment_users", "anonymous_session", "oauth", "hybrid"] = (
        "experiment_users"
    )
    collection_name: str | None = None
    session_cookie_name: str | None = None
    session_ttl_seconds: int = Field(default=86400, ge=60)
    allow_registration: bool = False
    link_platform_users: bool = True
    oauth_providers: list[OAuthProvider] = Field(default_factory=list)
    anonymous_user_prefix: str = "guest"
    user_id_field: str | None = None
    demo_users: list[DemoUser] = Field(default_factory=list)
    auto_link_platform_demo: bool = True
    demo_user_seed_strategy: Literal["auto", "manual", "disabled"] = "auto"
    allow_demo_access: bool = False

    @field_validator("collection_name")
    @classmethod
    def _coll(cls, value: str | None) -> str | None:
        return None if value is None else validate_collection_base_name(value)


class IndexDefinition(_Lenient):
    """One entry of ``managed_indexes[<collection>]``; ``keys`` normalised to pairs."""

    name: str
    type: IndexType
    keys: list[tuple[str, Any]] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    definition: dict[str, Any] | None = None
    hybrid: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _INDEX_NAME_RE.fullmatch(value):
            raise ValueError("index names may use letters, digits, '_', '.', '-' (max 100)")
        return value

    @field_validator("keys", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, dict):
            pairs = list(value.items())
        elif isinstance(value, list):
            pairs = []
            for item in value:
                if not isinstance(item, list | tuple) or len(item) != 2:
                    raise ValueError("keys as a list must hold [field, direction] pairs")
                pairs.append((item[0], item[1]))
        else:
            raise ValueError("keys must be an object or a list of [field, direction] pairs")
        if not pairs:
            raise ValueError("keys must not be empty")
        for field, direction in pairs:
            if not isinstance(field, str) or not field or field.startswith("$"):
                raise ValueError(f"invalid key field {field!r}")
            if isinstance(direction, bool) or direction not in _KEY_DIRECTIONS:
                raise ValueError(
                    f"invalid direction {direction!r} for {field!r}: one of {list(_KEY_DIRECTIONS)}"
                )
        return pairs

    @model_validator(mode="after")
    def _by_type(self) -> IndexDefinition:
        needs_keys = {"regular", "ttl", "partial", "text", "geospatial"}
        if self.type in needs_keys and not self.keys:
            raise ValueError(f"index type {self.type!r} needs 'keys'")
        if self.type == "ttl":
            ttl = self.options.get("expireAfterSeconds")
            if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
                raise ValueError("ttl index needs a positive integer options.expireAfterSeconds")
        if self.type == "partial":
            pfe = self.options.get("partialFilterExpression")
            if not isinstance(pfe, dict) or not pfe:
                raise ValueError("partial index needs options.partialFilterExpression (object)")
        if self.type in ("vectorSearch", "search") and not isinstance(self.definition, dict):
            raise ValueError(f"index type {self.type!r} needs 'definition' (object)")
        if self.type == "hybrid":
            hybrid = self.hybrid or {}
            for part in ("vector_index", "text_index"):
                if not isinstance(hybrid.get(part), dict):
                    raise ValueError(f"hybrid index needs hybrid.{part} (object)")
        if self.type == "regular" and self.keys == [("_id", 1)]:
            raise ValueError("the _id index exists already; do not declare it")
        return self


class ExperimentManifest(_Lenient):
    """The manifest fields the platform understands; any other top-level key is kept."""

    schema_version: str | None = None
    slug: str | None = None
    slug_id: str | None = None
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    status: Status | None = None
    auth_required: bool = False
    auth_policy: AuthPolicy | None = None
    sub_auth: SubAuth | None = None
    data_scope: list[str] = Field(default_factory=lambda: ["self"])
    managed_indexes: dict[str, list[IndexDefinition]] = Field(default_factory=dict)
    collection_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    developer_id: str | None = None
    owner_email: str | None = None
    runtime_s3_uri: str | None = None
    runtime_pip_deps: list[str] = Field(default_factory=list)

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d+\.\d+", value):
            raise ValueError("must be 'major.minor', e.g. '2.0'")
        return value

    @field_validator("slug", "slug_id")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        return None if value is None else validate_slug(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("data_scope")
    @classmethod
    def _scope(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must list at least 'self'")
        for entry in value:
            if entry != "self":
                validate_slug(entry)
        return value

    @field_validator("managed_indexes", "collection_settings")
    @classmethod
    def _collections(cls, value: dict[str, Any]) -> dict[str, Any]:
        for coll in value:
            validate_collection_base_name(coll)
        return value

    @field_validator("developer_id", "owner_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if not _EMAIL_RE.fullmatch(value):
            raise ValueError("must be an email address")
        return value

    @model_validator(mode="after")
    def _slug_ids_agree(self) -> ExperimentManifest:
        if self.slug and self.slug_id and self.slug != self.slug_id:
            raise ValueError(f"slug {self.slug!r} and slug_id {self.slug_id!r} differ")
        return self

    @property
    def declared_slug(self) -> str | None:
        return self.slug or self.slug_id

    def collection_base_names(self) -> set[str]:
        """Collections the manifest declares (managed indexes, collection settings)."""
        return set(self.managed_indexes) | set(self.collection_settings)

    def to_config(self) -> dict[str, Any]:
        """The manifest as stored in ``experiments_config`` (JSON types, extras kept)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data.pop("slug_id", None)
        for coll, indexes in data.get("managed_indexes", {}).items():
            data["managed_indexes"][coll] = [
                {**idx, "keys": [list(p) for p in idx["keys"]]} if idx.get("keys") else idx
                for idx in indexes
            ]
        return data


def _field_of(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "manifest"


def validate_manifest(data: Any) -> ExperimentManifest:
    """Validate a parsed manifest; raise :class:`ManifestError` naming each bad field."""
    if not isinstance(data, dict):
        raise ManifestError([{"field": "manifest", "message": "must be a JSON object"}])
    try:
        return ExperimentManifest.model_validate(data)
    except ValidationError as exc:
        errors = [
            {
                "field": _field_of(err["loc"]),
                "message": str(err["msg"]).removeprefix("Value error, "),
            }
            for err in exc.errors()
        ]
        raise ManifestError(errors) from None


def parse_manifest_text(text: str | bytes) -> ExperimentManifest:
    """Parse JSON text and validate it (size-capped; JSON errors name line and column)."""
    if len(text) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            [{"field": "manifest", "message": f"larger than {MAX_MANIFEST_BYTES} bytes"}]
        )
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError([{"field": "manifest", "message": f"not valid JSON: {exc}"}]) from None
    return validate_manifest(data)
