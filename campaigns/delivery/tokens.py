"""Signed ids in the tracked URLs a letter carries: made when sending, checked when followed."""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeSerializer

from campaigns.config import Settings
from campaigns.errors import ConfigError, TokenInvalid


class Tokens:
    """Signs and verifies the ids carried in tracked URLs, one salt per purpose."""

    PURPOSES = ("open", "click", "unsubscribe", "renewal", "acknowledge", "preferences", "view",
                "rating")  # fmt: skip

    def __init__(self, secret_key: str, *, old_keys: tuple[str, ...] = ()) -> None:
        if not secret_key:
            raise ConfigError("no SECRET_KEY to sign tracking links with")
        # itsdangerous signs with the last key and accepts any: retired keys keep the links
        # of letters already sent working after a rotation.
        keys = [*old_keys, secret_key]
        self._serializers = {
            p: URLSafeSerializer(keys, salt=f"campaigns.{p}") for p in self.PURPOSES
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> Tokens:
        return cls(settings.require_secret_key(), old_keys=settings.old_secret_keys)

    def sign(self, purpose: str, *ids: int) -> str:
        return str(self._serializers[purpose].dumps(list(ids)))

    def verify(self, purpose: str, token: str, *, arity: int = 1) -> tuple[int, ...]:
        """Return the ids in a token, or raise TokenInvalid if it was not signed by us."""
        try:
            ids = self._serializers[purpose].loads(token)
        except (BadSignature, KeyError, ValueError):
            raise TokenInvalid(f"this {purpose} link is not valid") from None
        valid = isinstance(ids, list) and len(ids) == arity
        if not valid or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise TokenInvalid(f"this {purpose} link is not valid")
        return tuple(ids)
