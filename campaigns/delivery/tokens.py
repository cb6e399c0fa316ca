"""Signed ids in the tracked URLs a letter carries: made when sending, checked when followed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import zlib

from itsdangerous import BadSignature, URLSafeSerializer

from campaigns.config import Settings
from campaigns.errors import ConfigError, TokenInvalid


class Tokens:
    """Signs and verifies the ids carried in tracked URLs, one salt per purpose."""

    PURPOSES = ("open", "click", "unsubscribe", "renewal", "acknowledge", "preferences", "view",
                "rating", "bounce")  # fmt: skip

    def __init__(self, secret_key: str, *, old_keys: tuple[str, ...] = ()) -> None:
        if not secret_key:
            raise ConfigError("no SECRET_KEY to sign tracking links with")
        # itsdangerous signs with the last key and accepts any: retired keys keep the links
        # of letters already sent working after a rotation.
        keys = [*old_keys, secret_key]
        self._serializers = {
            p: URLSafeSerializer(keys, salt=f"campaigns.{p}") for p in self.PURPOSES
        }
        # itsdangerous derives the HMAC key again (and tries zlib) on every dumps(): about
        # 100 µs, seven times a letter. The same token from a key derived once costs ~8 µs.
        self._signing_keys = {
            p: hashlib.sha1(f"campaigns.{p}".encode() + b"signer" + secret_key.encode()).digest()
            for p in self.PURPOSES
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> Tokens:
        return cls(settings.require_secret_key(), old_keys=settings.old_secret_keys)

    def sign(self, purpose: str, *ids: int) -> str:
        """Return the token itsdangerous' URLSafeSerializer would make for these ids."""
        payload = json.dumps(list(ids), separators=(",", ":")).encode()
        if not _incompressible(payload) and len(zlib.compress(payload)) < len(payload) - 1:
            return str(self._serializers[purpose].dumps(list(ids)))  # compressed: as it does
        body = base64.urlsafe_b64encode(payload).rstrip(b"=")
        mac = hmac.new(self._signing_keys[purpose], body, hashlib.sha1).digest()
        return (body + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode("ascii")

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


def _incompressible(payload: bytes) -> bool:
    """Whether zlib surely cannot shorten this short payload (so itsdangerous leaves it be).

    Without a repeated 3-byte run deflate finds no match, and on so few bytes the literals
    alone, with zlib's 6 bytes of framing, never come out shorter; checked against zlib for
    every shape of id list a letter signs (tests/web/test_public.py).
    """
    if len(payload) > 24:
        return False
    runs = {payload[i : i + 3] for i in range(len(payload) - 2)}
    return len(runs) == len(payload) - 2
