"""Experiment-level authentication (spec 2.10), with the weaknesses of spec 8 fixed.

**One place decides** which dependency guards an experiment's routes:
:func:`select_auth_strategy` (pure), used by :func:`experiment_auth_guard` when the
experiment is registered:

``auth_policy`` present            → ``"policy"``   :func:`require_experiment_access`
``auth_required`` + ``sub_auth``   → ``"hybrid"``   :func:`hybrid_guard` (below)
``auth_required``                  → ``"login"``    login required
otherwise                          → ``"optional"`` anonymous allowed

``"policy"``, ``"login"`` and ``"optional"`` all go through ``require_experiment_access``,
whose decision order implements exactly those three cases on the *live* config. The hybrid
guard re-reads the live config too and hands over to ``require_experiment_access`` when the
config no longer selects ``"hybrid"``: a config edited without a reload is enforced as
edited (the reference kept the old dependency, spec 8.13).

**Hybrid decision order** (:func:`resolve_identity`, first match wins):

(a) a valid platform token whose email passes ``admin_panel:access`` *at the authz
    provider* → admin (the token's ``is_admin`` claim alone grants nothing, spec 8.13);
(b) any other valid platform token → platform user; with ``link_platform_users`` it is
    linked to a profile in the experiment's own scoped collection
    ``<slug>_<collection_name or "users">`` through ``platform_user_id``;
(c) the experiment session cookie ``<session_cookie_name>_<slug>``: an HS256 JWT signed
    with the platform's secret but with its own ``typ`` and a per-experiment ``aud``, so a
    platform token is never an experiment session, an experiment session is never a
    platform token, and a session of experiment A is not one of experiment B (spec 8.1);
(d) demo fallback, only if ``allow_demo_access`` is explicitly true (the reference's
    default ``auto_link_platform_demo`` + ``seed_strategy=auto`` turned every anonymous
    visitor into a demo user, spec 8.11; here neither grants access:
    ``demo_user_seed_strategy`` only says when demo accounts are provisioned — ``auto`` on
    first need, ``manual`` only through :func:`ensure_demo_users`, ``disabled`` never) and
    never on paths containing ``/login``, ``/register``, ``/signin``, ``/signup``, ``/auth``;
(e) otherwise a login redirect (307) for GET/HEAD page views, 401 for everything else.

The identity lands on ``request.state.experiment_user``; handlers read it through
``Depends(get_experiment_user)`` (alias :data:`ExperimentUser`).

**Experiment-local users** are documents of that scoped collection: ``email``,
``password_hash`` (bcrypt through the platform's :class:`PasswordHasher`, off the event
loop), ``role``, ``is_demo``, ``extra_data``. No password is ever stored or compared in
plain text, demo users included (spec 8.11). Linked platform profiles carry
``platform_user_id``/``platform_email`` and no ``email``, so they never collide with a
local account of the same address.

**Login routes: the platform mounts them** (``POST /experiments/<slug>/auth/login``,
``/auth/logout``, ``/auth/register`` when ``allow_registration``, and a minimal GET form)
when ``sub_auth`` is enabled with the ``experiment_users`` or ``hybrid`` strategy. Why not
leave them to the experiments' own routers: every route of ``bp`` sits behind the
experiment's guard, so an anonymous visitor could never reach a login route defined
there (the guard would redirect it to itself). Mounting them beside ``bp``, without the
guard, is also less code per experiment and keeps hashing, cookie flags, the ``next``
check and the rate limits (the platform's ``login_*``/``register_*`` buckets, shared with
``/auth/...``) in one reviewed place. Experiments can still call the helpers
(:func:`create_experiment_user`, :func:`authenticate_experiment_user`,
:func:`create_experiment_session`...) from their own routes.

**Anonymous sessions** (:func:`get_or_create_anonymous_user`, for experiments that do not
require login): the cookie holds a signed token naming the id, never the bare id, so a
visitor cannot pick somebody else's anonymous identity (spec 8.11). They are not accepted
by the hybrid guard.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

import jwt
from bson import ObjectId
from bson.errors import InvalidId
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from platform_core.auth.models import CurrentUser
from platform_core.auth.passwords import MAX_PASSWORD_BYTES, PasswordHasher, password_problem
from platform_core.auth.redirects import is_safe_next_url, login_redirect_url, safe_next_url
from platform_core.auth.tokens import ALGORITHM, load_or_create_secret
from platform_core.auth.users import InvalidUserInput, UserExists, email_problem, normalize_email
from platform_core.errors import wants_json
from platform_core.experiments.manifest import SubAuth
from platform_core.ratelimit import RateLimit

log = logging.getLogger(__name__)

AuthStrategy = Literal["policy", "hybrid", "login", "optional"]
IdentityKind = Literal["admin", "platform", "experiment", "demo", "anonymous"]

DEFAULT_COLLECTION = "users"
DEFAULT_COOKIE = "experiment_session"
SESSION_TYPE = "experiment-session"
ANONYMOUS_TYPE = "experiment-anonymous"
ANONYMOUS_COOKIE_SUFFIX = "_anon"
ANONYMOUS_TTL_SECONDS = 30 * 86400
AUTH_PATH_MARKERS = ("/login", "/register", "/signin", "/signup", "/auth")
LOGIN_STRATEGIES = frozenset({"experiment_users", "hybrid"})
ADMIN_PANEL = ("admin_panel", "access")
_COOKIE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ANON_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_PUBLIC_HIDDEN = frozenset({"password_hash", "password"})


# ------------------------------------------------------------------------------------------
# Strategy selection (the one place) and sub_auth settings
# ------------------------------------------------------------------------------------------


def sub_auth_settings(config: dict[str, Any] | None) -> SubAuth | None:
    """The validated ``sub_auth`` of a config if it is enabled, else ``None``."""
    raw = (config or {}).get("sub_auth")
    if not isinstance(raw, dict) or not raw.get("enabled"):
        return None
    try:
        sub = SubAuth.model_validate(raw)
    except ValidationError as exc:  # stored configs are validated; be strict anyway
        raise ValueError(f"invalid sub_auth: {exc}") from None
    return sub if sub.enabled else None


def select_auth_strategy(config: dict[str, Any] | None) -> AuthStrategy:
    """Which guard an experiment gets (spec 2.10 order)."""
    config = config or {}
    if isinstance(config.get("auth_policy"), dict):
        return "policy"
    if config.get("auth_required"):
        return "hybrid" if sub_auth_settings(config) is not None else "login"
    return "optional"


def users_collection_name(sub: SubAuth) -> str:
    """Base name of the experiment's users collection (physical ``<slug>_<base>``)."""
    return sub.collection_name or DEFAULT_COLLECTION


def session_cookie_name(slug: str, sub: SubAuth) -> str:
    base = sub.session_cookie_name or DEFAULT_COOKIE
    if not _COOKIE_NAME_RE.fullmatch(base):
        raise ValueError(f"sub_auth.session_cookie_name {base!r}: use 1-64 of [A-Za-z0-9_-]")
    return f"{base}_{slug}"


def anonymous_cookie_name(slug: str, sub: SubAuth) -> str:
    return session_cookie_name(slug, sub) + ANONYMOUS_COOKIE_SUFFIX


def cookie_path(slug: str) -> str:
    # "/experiments/shop" is sent to /experiments/shop/... but not to /experiments/shopx.
    return f"/experiments/{slug}"


def audience(slug: str) -> str:
    return f"platform_core:experiment:{slug}"


def exposes_login_routes(sub: SubAuth | None) -> bool:
    return sub is not None and sub.strategy in LOGIN_STRATEGIES


def is_auth_path(path: str) -> bool:
    """Login/registration-like paths, where the demo fallback never applies."""
    lowered = path.lower()
    return any(marker in lowered for marker in AUTH_PATH_MARKERS)


# ------------------------------------------------------------------------------------------
# Session tokens
# ------------------------------------------------------------------------------------------


class ExperimentSessionCodec:
    """Experiment session (and anonymous) tokens: HS256, platform secret, own typ/aud.

    Claims: ``experiment_slug``, ``experiment_user_id``, ``iat``, ``exp``, ``typ``
    (``experiment-session`` or ``experiment-anonymous``) and ``aud``
    (``platform_core:experiment:<slug>``). The platform codec requires ``typ ==
    "platform-session"`` and ``aud == "platform_core"``, this one the reverse, so neither
    accepts the other's tokens although they share the key.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __repr__(self) -> str:  # never show the key
        return "ExperimentSessionCodec()"

    def encode(self, slug: str, user_id: str, ttl_seconds: int, *, typ: str = SESSION_TYPE,
               now: float | None = None) -> str:  # fmt: skip
        issued = int(now if now is not None else time.time())
        claims = {
            "experiment_slug": slug,
            "experiment_user_id": str(user_id),
            "iat": issued,
            "exp": issued + int(ttl_seconds),
            "typ": typ,
            "aud": audience(slug),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def decode(self, token: Any, slug: str, *, typ: str = SESSION_TYPE) -> str | None:
        """The ``experiment_user_id`` of a valid token of ``slug`` and ``typ``, else None."""
        if not isinstance(token, str) or not token or len(token) > 4096:
            return None
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=audience(slug),
                options={"require": ["exp", "iat", "aud", "typ"]},
            )
        except Exception:  # expired, tampered, wrong audience, malformed: all anonymous
            return None
        user_id = claims.get("experiment_user_id")
        if claims.get("typ") != typ or claims.get("experiment_slug") != slug:
            return None
        if not isinstance(user_id, str) or not user_id or len(user_id) > 200:
            return None
        return user_id


def session_codec(request: Request) -> ExperimentSessionCodec:
    """The app's codec, built once from the platform's secret source (``JWT_SECRET`` or
    ``DATA_DIR/jwt_secret``, exactly as the platform's :class:`TokenCodec`)."""
    state = request.app.state
    codec = getattr(state, "experiment_session_codec", None)
    if codec is None:
        codec = ExperimentSessionCodec(load_or_create_secret(state.settings))
        state.experiment_session_codec = codec
    return codec


def _secure(request: Request) -> bool:
    return request.app.state.settings.environment == "production" or request.url.scheme == "https"


def create_experiment_session(
    response: Response, request: Request, slug: str, sub: SubAuth, user_id: str
) -> str:
    """Mint a session for ``user_id`` and set it as the experiment's cookie."""
    token = session_codec(request).encode(slug, user_id, sub.session_ttl_seconds)
    response.set_cookie(
        session_cookie_name(slug, sub),
        token,
        max_age=sub.session_ttl_seconds,
        path=cookie_path(slug),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    return token


def clear_experiment_session(response: Response, request: Request, slug: str,
                             sub: SubAuth) -> None:  # fmt: skip
    response.delete_cookie(session_cookie_name(slug, sub), path=cookie_path(slug), httponly=True,
                           samesite="lax", secure=_secure(request))  # fmt: skip


# ------------------------------------------------------------------------------------------
# Identities and the users collection
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExperimentIdentity:
    """Who is using an experiment (see the decision order in the module docstring)."""

    kind: IdentityKind
    user_id: str
    email: str | None = None
    platform_user: CurrentUser | None = None
    profile: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    @property
    def is_demo(self) -> bool:
        return self.kind == "demo"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "user_id": self.user_id,
            "email": self.email,
            "is_admin": self.is_admin,
            "is_demo": self.is_demo,
            "platform_user_id": self.platform_user.user_id if self.platform_user else None,
            "profile": self.profile,
        }


def public_profile(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """A users-collection document without secrets, ``_id`` as a string."""
    if doc is None:
        return None
    out = {k: v for k, v in doc.items() if k not in _PUBLIC_HIDDEN}
    if "_id" in out:
        out["_id"] = str(out["_id"])
    return out


def _service(request: Request) -> Any:
    service = getattr(request.app.state, "experiment_service", None)
    if service is None:
        raise HTTPException(503, "Experiments are not available")
    return service


async def experiment_users(request: Request, slug: str, sub: SubAuth) -> Any:
    """The experiment's scoped users collection (``<slug>_<collection>``, own data only).

    The first call per app and collection also makes sure of the unique indexes on
    ``email`` and ``platform_user_id`` (sparse: linked profiles have no ``email``).
    """
    service = _service(request)
    entry = service.registry.get(slug)
    if entry is None:
        raise HTTPException(404, "Not found")
    base = users_collection_name(sub)
    users = service.scoped_db(entry).collection(base)
    state = request.app.state
    done: set[str] | None = getattr(state, "sub_auth_indexes", None)
    if done is None:
        done = state.sub_auth_indexes = set()
    if users.name not in done:
        done.add(users.name)
        await _ensure_user_indexes(service.db, users.name, slug)
    return users


async def _ensure_user_indexes(database: Any, physical: str, slug: str) -> None:
    coll = database[physical]
    for key in ("email", "platform_user_id"):
        try:
            await coll.create_index([(key, 1)], name=f"{slug}_sub_auth_{key}", unique=True,
                                    sparse=True)  # fmt: skip
        except PyMongoError as exc:  # uniqueness then rests on the check before inserting
            log.warning("sub_auth: unique index on %s.%s not created: %s", physical, key, exc)


async def create_experiment_user(
    users: Any,
    hasher: PasswordHasher,
    email: str,
    password: str | None,
    *,
    role: str = "user",
    is_demo: bool = False,
    extra_data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Insert an experiment-local account; only a bcrypt hash of the password is stored.

    ``password=None`` makes an account nobody can log in to by password (a demo profile
    used only by the demo fallback). Raises :class:`InvalidUserInput` /
    :class:`UserExists`. Demo users skip the minimum length (their passwords come from
    the manifest) but not the bcrypt byte limit.
    """
    email = normalize_email(email)
    problem = email_problem(email)
    if password is not None and not problem:
        if is_demo:
            if not password or len(password.encode()) > MAX_PASSWORD_BYTES:
                problem = f"Password must be 1-{MAX_PASSWORD_BYTES} bytes"
        else:
            problem = password_problem(password)
    if problem:
        raise InvalidUserInput(problem)
    if await users.find_one({"email": email}, {"_id": 1}) is not None:
        raise UserExists(email)
    doc: dict[str, Any] = {
        "email": email,
        "password_hash": (await hasher.hash(password)).decode() if password is not None else None,
        "role": role,
        "is_demo": is_demo,
        "extra_data": dict(extra_data or {}),
        "created_at": datetime.now(UTC),
    }
    try:
        result = await users.insert_one(doc)
    except DuplicateKeyError:
        raise UserExists(email) from None
    doc["_id"] = result.inserted_id
    return public_profile(doc) or {}


async def authenticate_experiment_user(
    users: Any, hasher: PasswordHasher, email: str, password: str
) -> dict[str, Any] | None:
    """The account's public profile if ``password`` matches its bcrypt hash, else None.

    Unknown emails still cost one bcrypt check (no account enumeration by timing). A
    record without a hash (or with a legacy plain-text ``password`` field) never matches.
    """
    if not isinstance(email, str) or not isinstance(password, str) or not password:
        return None
    doc = await users.find_one({"email": normalize_email(email)})
    stored = doc.get("password_hash") if doc else None
    if not isinstance(stored, str | bytes):
        stored = None
    if not await hasher.verify(password, stored) or doc is None:
        return None
    return public_profile(doc)


def _demo_specs(slug: str, sub: SubAuth) -> list[dict[str, Any]]:
    specs = [
        {"email": d.email, "password": d.password, "role": d.role or "demo", "extra": d.extra_data}
        for d in sub.demo_users
        if d.auto_create
    ]
    if not specs and not sub.demo_users and sub.allow_demo_access:
        # Demo access without configured demo users: one profile nobody can log in to.
        specs.append({"email": f"demo@{slug}.demo", "password": None, "role": "demo",
                      "extra": {}})  # fmt: skip
    return specs


async def ensure_demo_users(users: Any, hasher: PasswordHasher, slug: str,
                            sub: SubAuth) -> list[str]:  # fmt: skip
    """Create the manifest's missing demo users (hashed); returns the emails created.

    Nothing happens when ``demo_user_seed_strategy`` is ``"disabled"``. Idempotent: an
    existing account is never touched (its password may have been changed since).
    """
    if sub.demo_user_seed_strategy == "disabled":
        return []
    created: list[str] = []
    for spec in _demo_specs(slug, sub):
        try:
            await create_experiment_user(users, hasher, spec["email"], spec["password"],
                                         role=spec["role"], is_demo=True,
                                         extra_data=spec["extra"])  # fmt: skip
        except UserExists:
            continue
        except InvalidUserInput as exc:
            log.warning("sub_auth %s: demo user %s skipped: %s", slug, spec["email"], exc)
            continue
        created.append(normalize_email(spec["email"]))
    return created


async def _demo_identity(request: Request, slug: str, sub: SubAuth) -> ExperimentIdentity | None:
    users = await experiment_users(request, slug, sub)
    doc = await _find_demo(users, slug, sub)
    hasher = request.app.state.password_hasher
    if (doc is None and sub.demo_user_seed_strategy == "auto"
            and await ensure_demo_users(users, hasher, slug, sub)):  # fmt: skip
        doc = await _find_demo(users, slug, sub)
    if doc is None:
        return None
    return ExperimentIdentity("demo", str(doc["_id"]), doc.get("email"),
                              profile=public_profile(doc))  # fmt: skip


async def _find_demo(users: Any, slug: str, sub: SubAuth) -> dict[str, Any] | None:
    for spec in _demo_specs(slug, sub) or [{"email": d.email} for d in sub.demo_users]:
        doc = await users.find_one({"email": normalize_email(spec["email"]), "is_demo": True})
        if doc is not None:
            return doc
    return await users.find_one({"is_demo": True})


async def _linked_profile(request: Request, slug: str, sub: SubAuth,
                          user: CurrentUser) -> dict[str, Any] | None:  # fmt: skip
    users = await experiment_users(request, slug, sub)
    doc = await users.find_one({"platform_user_id": user.user_id})
    if doc is None:
        try:
            doc = await users.find_one_and_update(
                {"platform_user_id": user.user_id},
                {"$setOnInsert": {"platform_user_id": user.user_id, "platform_email": user.email,
                                  "role": "user", "created_at": datetime.now(UTC)}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )  # fmt: skip
        except DuplicateKeyError:  # a concurrent first visit linked it
            doc = await users.find_one({"platform_user_id": user.user_id})
    return public_profile(doc)


async def _session_user(request: Request, slug: str, sub: SubAuth) -> dict[str, Any] | None:
    token = request.cookies.get(session_cookie_name(slug, sub))
    user_id = session_codec(request).decode(token, slug) if token else None
    if user_id is None:
        return None
    try:
        key: Any = ObjectId(user_id)
    except (InvalidId, TypeError):
        key = user_id
    users = await experiment_users(request, slug, sub)
    return await users.find_one({"_id": key})  # a deleted account is anonymous again


# ------------------------------------------------------------------------------------------
# The hybrid decision
# ------------------------------------------------------------------------------------------


async def resolve_identity(
    request: Request, slug: str, sub: SubAuth | None, *, allow_demo: bool = True
) -> ExperimentIdentity | None:
    """Steps (a)-(d) of the module docstring; ``None`` means anonymous."""
    from platform_core.deps import get_current_user

    user = await get_current_user(request)
    if user is not None:
        authz = getattr(request.app.state, "authz", None)
        admin = authz is not None and await authz.check(user.email, *ADMIN_PANEL)
        profile = None
        if sub is not None and sub.link_platform_users:
            profile = await _linked_profile(request, slug, sub, user)
        return ExperimentIdentity("admin" if admin else "platform",
                                  str(profile["_id"]) if profile else user.user_id,
                                  user.email, user, profile)  # fmt: skip
    if sub is None:
        return None
    doc = await _session_user(request, slug, sub)
    if doc is not None:
        kind: IdentityKind = "demo" if doc.get("is_demo") else "experiment"
        return ExperimentIdentity(kind, str(doc["_id"]), doc.get("email"),
                                  profile=public_profile(doc))  # fmt: skip
    if allow_demo and sub.allow_demo_access is True and not is_auth_path(request.url.path):
        return await _demo_identity(request, slug, sub)
    return None


def experiment_login_url(request: Request, slug: str) -> str:
    """``/experiments/<slug>/auth/login?next=<this path>`` (only a safe ``next``)."""
    base = f"/experiments/{slug}/auth/login"
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not is_safe_next_url(target) or is_auth_path(request.url.path):
        return base
    return f"{base}?next={quote(target, safe='')}"


def login_required(request: Request, slug: str, sub: SubAuth | None) -> HTTPException:
    """Step (e): 307 to the login page for page views (GET/HEAD), else 401."""
    if wants_json(request) or request.method not in ("GET", "HEAD"):
        return HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Cookie"})
    target = (experiment_login_url(request, slug) if exposes_login_routes(sub)
              else login_redirect_url(request))  # fmt: skip
    return HTTPException(307, headers={"Location": target})


def hybrid_guard(slug: str) -> Any:
    """Router-level dependency of ``"hybrid"`` experiments (decision order above)."""

    async def experiment_hybrid_auth(request: Request) -> None:
        from platform_core.experiments.access import require_experiment_access

        config = await _service(request).config_cache.get(slug, request=request)
        if config is None:
            raise HTTPException(404, "Not found")
        if select_auth_strategy(config) != "hybrid":  # edited since registration
            await require_experiment_access(request, slug)
            return
        sub = sub_auth_settings(config)
        identity = await resolve_identity(request, slug, sub)
        if identity is None:
            raise login_required(request, slug, sub)
        request.state.experiment_user = identity

    return experiment_hybrid_auth


def experiment_auth_guard(slug: str, config: dict[str, Any]) -> Any:
    """THE choice of an experiment's guard, made at registration (see module docstring).

    Raises ``ValueError`` (the registration then fails with that message) for a
    ``sub_auth`` the platform cannot honour safely, such as a cookie name that is not a
    plain token.
    """
    from platform_core.experiments.registry import access_guard

    sub = sub_auth_settings(config)
    if sub is not None:
        session_cookie_name(slug, sub)  # validate now, not on the first request
        if not _ANON_PREFIX_RE.fullmatch(sub.anonymous_user_prefix):
            raise ValueError("sub_auth.anonymous_user_prefix: use 1-32 of [A-Za-z0-9_-]")
    if select_auth_strategy(config) == "hybrid":
        return hybrid_guard(slug)
    return access_guard(slug)


async def get_experiment_user(request: Request) -> ExperimentIdentity | None:
    """Dependency for experiment handlers: the identity the guard found, or (behind a
    non-hybrid guard) the same resolution without demo fallback and without raising."""
    identity = getattr(request.state, "experiment_user", None)
    if identity is not None:
        return identity
    slug = getattr(request.state, "slug_id", None)
    if not slug:
        raise HTTPException(500, "Experiment context missing: route not mounted by the platform")
    config = await _service(request).config_cache.get(slug, request=request)
    identity = await resolve_identity(request, slug, sub_auth_settings(config), allow_demo=False)
    request.state.experiment_user = identity
    return identity


ExperimentUser = Annotated[ExperimentIdentity | None, Depends(get_experiment_user)]


async def get_or_create_anonymous_user(request: Request, response: Response, slug: str,
                                       sub: SubAuth) -> ExperimentIdentity:  # fmt: skip
    """A stable anonymous identity kept in a *signed* cookie ``<cookie>_<slug>_anon``.

    A missing, expired, tampered or foreign cookie gets a new random id
    ``<anonymous_user_prefix>_<hex>``; the value the client holds is a token naming it,
    so choosing another visitor's id is not possible.
    """
    codec = session_codec(request)
    name = anonymous_cookie_name(slug, sub)
    anon_id = codec.decode(request.cookies.get(name), slug, typ=ANONYMOUS_TYPE)
    if anon_id is None:
        anon_id = f"{sub.anonymous_user_prefix}_{secrets.token_hex(12)}"
        ttl = max(sub.session_ttl_seconds, ANONYMOUS_TTL_SECONDS)
        response.set_cookie(name, codec.encode(slug, anon_id, ttl, typ=ANONYMOUS_TYPE),
                            max_age=ttl, path=cookie_path(slug), httponly=True, samesite="lax",
                            secure=_secure(request))  # fmt: skip
    return ExperimentIdentity("anonymous", anon_id)


# ------------------------------------------------------------------------------------------
# Login, logout and registration routes (mounted beside bp, outside the guard)
# ------------------------------------------------------------------------------------------

_FORM_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><main style="max-width:24rem;margin:3rem auto;font-family:system-ui,sans-serif">
<h1>{title}</h1>{error}
<form method="post" action="{action}">
<input type="hidden" name="next" value="{next}">
<p><label>Email<br><input name="email" type="email" value="{email}" required></label></p>
<p><label>Password<br><input name="password" type="password" required></label></p>
<p><button type="submit">{title}</button></p>
</form>{links}</main></body></html>
"""


def _is_json(request: Request) -> bool:
    ctype = request.headers.get("content-type", "")
    return ctype.startswith("application/json") or wants_json(request)


async def _credentials(request: Request) -> dict[str, str]:
    try:
        data: Any = await request.json() if _is_json(request) else dict(await request.form())
    except Exception:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return {k: v[:4096] for k in ("email", "password", "next")
            if isinstance(v := data.get(k), str)}  # fmt: skip


def sub_auth_router(slug: str, config: dict[str, Any]) -> APIRouter | None:
    """The experiment's own login routes, or ``None`` (sub_auth off or no local users)."""
    sub = sub_auth_settings(config)
    if not exposes_login_routes(sub):
        return None
    assert sub is not None
    router = APIRouter(prefix="/auth", include_in_schema=False)
    home = f"/experiments/{slug}/"
    action = f"/experiments/{slug}/auth"

    async def live_sub(request: Request) -> SubAuth:
        config = await _service(request).config_cache.get(slug, request=request)
        live = sub_auth_settings(config)
        if not exposes_login_routes(live):
            raise HTTPException(404, "Not found")
        assert live is not None
        return live

    def page(kind: str, live: SubAuth, *, next_url: str, email: str = "", error: str = "",
             status: int = 200) -> HTMLResponse:  # fmt: skip
        title = "Register" if kind == "register" else "Log in"
        other = "login" if kind == "register" else "register"
        links = ""
        if kind == "register" or live.allow_registration:
            href = f"{action}/{other}?next={quote(next_url, safe='')}"
            label = "Log in" if other == "login" else "Register"
            links = f'<p><a href="{html.escape(href)}">{label}</a></p>'
        body = _FORM_PAGE.format(
            title=title, action=html.escape(f"{action}/{kind}"), next=html.escape(next_url),
            email=html.escape(email), links=links,
            error=f'<p role="alert">{html.escape(error)}</p>' if error else "",
        )  # fmt: skip
        return HTMLResponse(body, status_code=status)

    def failure(request: Request, kind: str, live: SubAuth, status: int, message: str,
                creds: dict[str, str]) -> Response:  # fmt: skip
        if _is_json(request):
            return JSONResponse({"status": "error", "detail": message}, status_code=status)
        return page(kind, live, next_url=safe_next_url(creds.get("next"), home),
                    email=creds.get("email", ""), error=message, status=status)  # fmt: skip

    def success(request: Request, live: SubAuth, profile: dict[str, Any],
                creds: dict[str, str], status: int = 200) -> Response:  # fmt: skip
        response: Response
        if _is_json(request):
            response = JSONResponse({"status": "ok", "user": jsonable_encoder(profile)},
                                    status_code=status)  # fmt: skip
        else:
            response = RedirectResponse(safe_next_url(creds.get("next"), home), status_code=303)
        create_experiment_session(response, request, slug, live, str(profile["_id"]))
        return response

    @router.get("/login", dependencies=[Depends(RateLimit("login_page"))])
    async def login_page(request: Request, next: str | None = None) -> Response:
        return page("login", await live_sub(request), next_url=safe_next_url(next, home))

    @router.post("/login", dependencies=[Depends(RateLimit("login_post"))])
    async def login(request: Request) -> Response:
        live = await live_sub(request)
        creds = await _credentials(request)
        users = await experiment_users(request, slug, live)
        hasher: PasswordHasher = request.app.state.password_hasher
        if live.demo_user_seed_strategy == "auto" and live.demo_users:
            await ensure_demo_users(users, hasher, slug, live)
        profile = await authenticate_experiment_user(users, hasher, creds.get("email", ""),
                                                     creds.get("password", ""))  # fmt: skip
        if profile is None:
            return failure(request, "login", live, 401, "Invalid email or password", creds)
        return success(request, live, profile, creds)

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        live = await live_sub(request)
        response: Response = (JSONResponse({"status": "ok"}) if _is_json(request)
                              else RedirectResponse(home, status_code=303))  # fmt: skip
        clear_experiment_session(response, request, slug, live)
        return response

    async def registration(request: Request) -> SubAuth:
        live = await live_sub(request)
        if not live.allow_registration:
            raise HTTPException(404, "Not found")
        return live

    @router.get("/register", dependencies=[Depends(RateLimit("register_page"))])
    async def register_page(request: Request, next: str | None = None) -> Response:
        return page("register", await registration(request), next_url=safe_next_url(next, home))

    @router.post("/register", dependencies=[Depends(RateLimit("register_post"))])
    async def register(request: Request) -> Response:
        live = await registration(request)
        creds = await _credentials(request)
        users = await experiment_users(request, slug, live)
        try:
            profile = await create_experiment_user(users, request.app.state.password_hasher,
                                                   creds.get("email", ""),
                                                   creds.get("password", ""))  # fmt: skip
        except InvalidUserInput as exc:
            return failure(request, "register", live, 400, str(exc), creds)
        except UserExists:
            return failure(request, "register", live, 409,
                           "An account with this email already exists", creds)  # fmt: skip
        return success(request, live, profile, creds, status=201)

    return router
