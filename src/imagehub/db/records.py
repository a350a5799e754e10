"""Tables. Alembic migrations under ``migrations/`` create them; these classes only map them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class GenerationRecord(Base):
    """One generation: a queued job or a finished sync call, with what reproduces it."""

    __tablename__ = "generations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    model_name: Mapped[str] = mapped_column(String(128))
    media_type: Mapped[str] = mapped_column(String(16), default="image")
    source: Mapped[str] = mapped_column(String(8))  # "queue" | "sync"
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The model fields exactly as the request carried them (echoed on the row)."""
    carried: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """The generic fields the request carried, but its seed (``target_namespace``,
    ``num_generations`` or ``n``, ``response_format``): echoed on the row too. The seed is echoed
    from ``resolved``, as the seed used."""
    resolved: Mapped[dict[str, Any]] = mapped_column(JSON)
    """Every parameter after defaults, with the seed used, width and height."""
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Model fingerprint, backend/provider, imagehub/diffusers/torch versions."""
    status: Mapped[str] = mapped_column(String(16))
    num_images: Mapped[int] = mapped_column(Integer, default=1)
    images: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """[{"key": storage key, "width": w, "height": h}]"""
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    progress: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    enqueued_at: Mapped[int] = mapped_column(Integer)
    order_key: Mapped[int] = mapped_column(BigInteger)
    """Nanosecond enqueue time: FIFO order within one second."""
    started_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completed_at: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (
        Index("ix_generations_status_order", "status", "order_key"),
        Index("ix_generations_namespace_enqueued", "namespace", "enqueued_at"),
        Index("ix_generations_idempotency", "namespace", "idempotency_key"),
        Index("ix_generations_completed", "completed_at"),
        Index("ix_generations_namespace_status", "namespace", "status"),
        Index("ix_generations_status_model_order", "status", "model_name", "order_key"),
    )


class IdempotencyKeyRecord(Base):
    """An ``Idempotency-Key`` taken, written with its request's rows: its primary key lets one
    request in, whichever process sends it."""

    __tablename__ = "idempotency_keys"

    namespace: Mapped[str] = mapped_column(String(128), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[int] = mapped_column(Integer)


class ApiKeyRecord(Base):
    """An API key: only its SHA-256 is kept; the key itself is shown once at creation."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128), default="")
    namespace: Mapped[str] = mapped_column(String(128))
    member_of: Mapped[list[str]] = mapped_column(JSON, default=list)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(Integer)
    revoked_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
