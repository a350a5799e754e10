"""API keys: created once (shown once), stored as SHA-256, checked on every request."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from imagehub.db.records import ApiKeyRecord
from imagehub.errors import NotFound, Unauthenticated, clip

KEY_PREFIX = "ih_"
PUBLIC_PREFIX_LENGTH = 10
"""A key's first characters, stored and shown (``keys list``, errors); the rest is the secret."""
ANONYMOUS_NAMESPACE = "default"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key and the namespaces it may act in (its own first)."""

    namespace: str
    key_id: str | None = None
    member_of: tuple[str, ...] = field(default_factory=tuple)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.namespace, *self.member_of)


ANONYMOUS = Principal(namespace=ANONYMOUS_NAMESPACE)


@dataclass
class CreatedKey:
    key: str
    """The secret, shown once."""
    record: ApiKeyRecord


_KEYS = ApiKeyRecord.__table__
_BY_DIGEST = select(_KEYS.c.id, _KEYS.c.prefix, _KEYS.c.namespace, _KEYS.c.member_of,
                    _KEYS.c.revoked).where(_KEYS.c.secret_hash == bindparam("digest"))
"""Built once: every request runs it (on a Core connection, a third of a Session's cost)."""
_REVOKED = select(_KEYS.c.revoked).where(_KEYS.c.id == bindparam("key_id"))


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyService:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._engine = sessions.kw["bind"]

    def create(self, namespace: str = ANONYMOUS_NAMESPACE, name: str = "",
               member_of: list[str] | None = None) -> CreatedKey:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKeyRecord(
            id=str(uuid.uuid4()), secret_hash=_digest(key), prefix=key[:PUBLIC_PREFIX_LENGTH], name=name,
            namespace=namespace, member_of=list(member_of or []), revoked=False,
            created_at=int(time.time()),
        )
        with self._sessions.begin() as session:
            session.add(record)
        return CreatedKey(key=key, record=record)

    def list(self) -> list[ApiKeyRecord]:
        with self._sessions() as session:
            return list(session.scalars(select(ApiKeyRecord).order_by(ApiKeyRecord.created_at)))

    def revoke(self, key_id_or_prefix: str) -> bool:
        """Revoke the key; False when it was revoked already (NotFound when there is none)."""
        named = (ApiKeyRecord.id == key_id_or_prefix) | (ApiKeyRecord.prefix == key_id_or_prefix)
        with self._sessions.begin() as session:
            done = session.execute(
                update(ApiKeyRecord).where(named, ApiKeyRecord.revoked.is_(False))
                .values(revoked=True, revoked_at=int(time.time()))
            ).rowcount
            if done:
                return True
            if session.scalar(select(ApiKeyRecord.id).where(named)) is None:
                raise NotFound(f"API key not found: {clip(key_id_or_prefix)}")
        return False

    def is_active(self, key_id: str) -> bool:
        """Whether the key still exists and is not revoked (an open event stream asks)."""
        with self._engine.connect() as connection:
            revoked = connection.execute(_REVOKED, {"key_id": key_id}).scalar()
        return revoked is not None and not revoked

    def id_of(self, key: str) -> str:
        """The id of the key whose secret is ``key``, revoked or not (NotFound naming its public
        prefix, never the secret)."""
        with self._sessions() as session:
            key_id = session.scalar(select(ApiKeyRecord.id)
                                    .where(ApiKeyRecord.secret_hash == _digest(key)))
        if key_id is None:
            raise NotFound(f"API key not found: {key[:PUBLIC_PREFIX_LENGTH]}...")
        return key_id

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer <key>`` header, or Unauthenticated."""
        if not authorization:
            raise Unauthenticated("missing Authorization header; send 'Authorization: Bearer <key>'")
        scheme, _, key = authorization.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise Unauthenticated("malformed Authorization header; expected 'Bearer <key>'")
        with self._engine.connect() as connection:
            record = connection.execute(_BY_DIGEST, {"digest": _digest(key)}).first()
        if record is None:
            raise Unauthenticated(f"unknown API key {key[:PUBLIC_PREFIX_LENGTH]}...")
        if record.revoked:
            raise Unauthenticated(f"API key {record.prefix}... was revoked")
        return Principal(namespace=record.namespace, key_id=record.id,
                         member_of=tuple(record.member_of or ()))
