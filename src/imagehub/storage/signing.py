"""Signed, expiring file URLs: ``/api/files/<token>/<index>.png``; the token signs the generation id."""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class UrlSigner:
    def __init__(self, secret: str, base_url: str, ttl_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="imagehub-files")
        self._base_url, self.ttl = base_url, ttl_seconds

    def url(self, generation_id: str, filename: str) -> str:
        return f"{self._base_url}/api/files/{self._serializer.dumps(generation_id)}/{filename}"

    def verify(self, token: str) -> str | None:
        """The generation id the token was signed for, or None if forged or expired."""
        try:
            return str(self._serializer.loads(token, max_age=self.ttl))
        except (BadSignature, SignatureExpired):
            return None
