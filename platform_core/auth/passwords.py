"""bcrypt hashing and checking, off the event loop by default.

One bcrypt hash costs 2^rounds iterations: ~0.2 s of CPU at the default 12 rounds. The
reference ran it on the event loop, stalling every other request for that long per login
(PLATFORM_SPEC 9). ``mode="thread"`` (default) runs it in ``asyncio.to_thread``;
``mode="inline"`` keeps the reference behaviour for the ``password_hashing`` knob. The mode
can be changed on a live hasher (``hasher.mode = "inline"``).
"""

from __future__ import annotations

import asyncio
from typing import Literal

import bcrypt

HashingMode = Literal["thread", "inline"]
HASHING_MODES: tuple[HashingMode, ...] = ("thread", "inline")

MIN_PASSWORD_LENGTH = 8
# bcrypt only uses the first 72 bytes, and bcrypt>=5 refuses longer input outright.
MAX_PASSWORD_BYTES = 72


def password_problem(password: str) -> str | None:
    """Why ``password`` is not acceptable for a new account, or ``None``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return f"Password must be at most {MAX_PASSWORD_BYTES} bytes"
    return None


class PasswordHasher:
    __slots__ = ("_dummy_hash", "mode", "rounds")

    def __init__(self, rounds: int = 12, mode: HashingMode = "thread") -> None:
        if mode not in HASHING_MODES:
            raise ValueError(f"unknown password hashing mode {mode!r}: {HASHING_MODES}")
        self.rounds = rounds
        self.mode: HashingMode = mode
        self._dummy_hash: bytes | None = None

    def _hash_sync(self, password: str) -> bytes:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=self.rounds))

    @staticmethod
    def _check_sync(password: str, hashed: bytes) -> bool:
        encoded = password.encode()
        if len(encoded) > MAX_PASSWORD_BYTES:
            return False
        try:
            return bcrypt.checkpw(encoded, hashed)
        except ValueError:  # not a bcrypt hash (corrupt record)
            return False

    async def _run(self, func, *args):  # type: ignore[no-untyped-def]
        if self.mode == "inline":
            return func(*args)
        return await asyncio.to_thread(func, *args)

    async def hash(self, password: str) -> bytes:
        return await self._run(self._hash_sync, password)

    async def verify(self, password: str, hashed: bytes | str | None) -> bool:
        """True if ``password`` matches ``hashed``.

        With no stored hash (unknown user) a dummy hash is still checked, so the answer
        takes as long as for a real user and does not reveal which emails exist.
        """
        if hashed is None:
            if self._dummy_hash is None:
                self._dummy_hash = self._hash_sync("not-a-real-password")
            await self._run(self._check_sync, password, self._dummy_hash)
            return False
        if isinstance(hashed, str):
            hashed = hashed.encode()
        return bool(await self._run(self._check_sync, password, bytes(hashed)))
