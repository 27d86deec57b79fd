"""Secrets kept in the database (providers' auth tokens), encrypted with a key derived from INBOX_SECRET_KEY.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with its key derived by HKDF-SHA256, so the
session-signing secret itself is never used as an encryption key and other uses can derive their own.
Changing INBOX_SECRET_KEY makes stored tokens unreadable: they must then be entered again.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SALT = b"case-inbox"
_INFO = b"provider auth tokens v1"


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted: INBOX_SECRET_KEY changed, or the value was altered."""


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(str(secret_key).encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def __repr__(self) -> str:
        return "SecretBox(**********)"

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except (InvalidToken, UnicodeError, ValueError) as error:
            raise SecretUnreadable("The stored secret cannot be decrypted with this INBOX_SECRET_KEY.") from error


def last_four(secret: str) -> str:
    """How a stored secret is shown again: its last four characters only."""
    return "••••" + secret[-4:] if len(secret) > 4 else "••••"
