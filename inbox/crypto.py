"""Secrets kept in the database (providers' auth tokens), encrypted with a key derived from INBOX_SECRET_KEY.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with its key derived by HKDF-SHA256, so the
session-signing secret itself is never used as an encryption key and other uses can derive their own.
To change INBOX_SECRET_KEY, list the previous key in INBOX_SECRET_KEY_OLD: stored tokens still decrypt
(MultiFernet tries the new key first, then each old one) and `inbox rotate-secrets` re-encrypts them with
the new key, after which the old key can be dropped.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SALT = b"case-inbox"
_INFO = b"provider auth tokens v1"


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted: INBOX_SECRET_KEY changed, or the value was altered."""


def _fernet_for(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(str(secret_key).encode())
    return Fernet(base64.urlsafe_b64encode(key))


class SecretBox:
    """Encrypts with the current key; decrypts with the current key or any old one."""

    def __init__(self, secret_key: str, old_keys: Iterable[str] = ()) -> None:
        self._fernet = MultiFernet([_fernet_for(key) for key in (secret_key, *old_keys)])

    def __repr__(self) -> str:
        return "SecretBox(**********)"

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except (InvalidToken, UnicodeError, ValueError) as error:
            raise SecretUnreadable("The stored secret cannot be decrypted with this INBOX_SECRET_KEY.") from error

    def rotate(self, ciphertext: str) -> str:
        """The same secret encrypted with the current key (readable without the old keys)."""
        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError, ValueError) as error:
            raise SecretUnreadable("The stored secret cannot be decrypted with these keys.") from error


def last_four(secret: str) -> str:
    """How a stored secret is shown again: its last four characters only."""
    return "••••" + secret[-4:] if len(secret) > 4 else "••••"
