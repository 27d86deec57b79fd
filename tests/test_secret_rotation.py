"""INBOX_SECRET_KEY rotation: tokens stored under the old key keep working while it is listed in
INBOX_SECRET_KEY_OLD, and `inbox rotate-secrets` re-encrypts them for the new key alone. Also:
passwords hashed with other argon2 parameters are rehashed at sign-in."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from starlette.applications import Starlette

from inbox import db
from inbox.crypto import SecretBox, SecretUnreadable
from inbox.models import Channel, Conversation, Direction, Message, MessageStatus, Staff
from inbox.services.channels import save_channel
from inbox.services.secret_rotation import reencrypt_channel_tokens
from inbox.services.staff import (
    ARGON2_PROFILE_VARIABLE,
    PASSWORD_HASHER,
    authenticate,
    create_staff,
    hasher_from_environment,
)
from inbox.settings import Secret, Settings
from tests.support.apps import asgi_client, running
from tests.support.channels import SECOND_NUMBER, SECOND_SID, SECOND_TOKEN, VALID_FORM
from tests.support.cli import run_inbox
from tests.support.fake_twilio import FakeTwilio
from tests.support.records import MARIA
from tests.support.staff import PASSWORD, post_sign_in, sign_in
from tests.support.webhooks import inbound_params_for, numbered_sid, signed_post_args

OLD_KEY = "the-key-we-used-last-year-" + "o" * 24
NEW_KEY = "the-key-we-use-from-today-" + "n" * 24


async def test_a_token_stored_under_the_old_key_works_until_and_after_rotate_secrets(
    settings: Settings, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.add_account(SECOND_SID, SECOND_TOKEN)
    rotated_settings = settings.with_changes(secret_key=Secret(NEW_KEY), secret_key_old=(Secret(OLD_KEY),))
    async with running(rotated_settings, fake_twilio) as app:
        admin, _ = await create_staff(email="ada@example.org", name="Ada", role="admin", password=PASSWORD)
        # Saved last year, under the old key.
        channel = await save_channel(admin, SecretBox(OLD_KEY), replace(VALID_FORM), env_account_sid=None)
        stored_under_old = channel.auth_token_encrypted or ""
        with pytest.raises(SecretUnreadable):
            SecretBox(NEW_KEY).decrypt(stored_under_old)

        # With the new key set and the old one listed, webhooks validate and texts go out.
        async with asgi_client(app) as http:
            inbound = await http.post(
                **signed_post_args(
                    "/webhooks/twilio/messages",
                    inbound_params_for(SECOND_SID, SECOND_NUMBER, numbered_sid(1)),
                    token=SECOND_TOKEN,
                )
            )
            assert inbound.status_code == 200, inbound.text
        conversation = await Conversation.get(phone=MARIA)
        assert conversation.channel_id == channel.id  # type: ignore[attr-defined]
        supervisor, _ = await create_staff(email="sam@example.org", name="Sam", role="supervisor", password=PASSWORD)
        browser = await sign_in(app, supervisor)
        await browser.get(f"/conversations/{conversation.id}")
        sent = await browser.post(f"/conversations/{conversation.id}/messages", {"body": "Courtroom 4B."})
        assert sent.status_code in (200, 303), sent.text
        await fake_twilio.callbacks_done()
        [create] = fake_twilio.creates
        assert create.auth_user == SECOND_SID and create.params["From"] == SECOND_NUMBER
        assert (await Message.get(direction=Direction.OUTBOUND)).status == MessageStatus.DELIVERED
        # The admin page still shows the stored token's last four.
        admin_browser = await sign_in(app, admin)
        page = await admin_browser.get("/admin/channels")
        assert "••••" + SECOND_TOKEN[-4:] in page.text
        await browser.http.aclose()
        await admin_browser.http.aclose()

        result = await reencrypt_channel_tokens(SecretBox(NEW_KEY, [OLD_KEY]))
        assert (result.rotated, result.unreadable) == (1, [])
        stored = (await Channel.get(id=channel.id)).auth_token_encrypted or ""
        assert stored != stored_under_old
        assert SecretBox(NEW_KEY).decrypt(stored) == SECOND_TOKEN  # the new key alone reads it
        with pytest.raises(SecretUnreadable):
            SecretBox(OLD_KEY).decrypt(stored)


def rotate_secrets(workdir: Path, key: str, old_keys: str) -> subprocess.CompletedProcess[str]:
    return run_inbox(workdir, "rotate-secrets", env={"INBOX_SECRET_KEY": key, "INBOX_SECRET_KEY_OLD": old_keys})


async def test_the_rotate_secrets_command_re_encrypts_and_names_what_it_cannot_read(workdir: Path) -> None:
    url = f"sqlite://{workdir / 'x.sqlite3'}"
    await db.migrate(url)
    await db.connect(url)
    try:
        await Channel.create(
            label="Housing", account_sid=SECOND_SID, auth_token_encrypted=SecretBox(OLD_KEY).encrypt("t1")
        )
        await Channel.create(
            label="Benefits", account_sid="AC" + "4" * 32, auth_token_encrypted=SecretBox(OLD_KEY).encrypt("t2")
        )
        await Channel.create(label="From the environment", account_sid="AC" + "5" * 32)
    finally:
        await db.disconnect()

    without_old = rotate_secrets(workdir, NEW_KEY, "")
    assert without_old.returncode != 0
    assert "Housing, Benefits" in without_old.stderr and "INBOX_SECRET_KEY_OLD" in without_old.stderr

    done = rotate_secrets(workdir, NEW_KEY, f"some-other-old-key-{'x' * 20}, {OLD_KEY}")
    assert done.returncode == 0, done.stderr
    assert "Re-encrypted 2 stored auth token(s)" in done.stdout
    await db.connect(url)
    try:
        tokens = {c.label: c.auth_token_encrypted for c in await Channel.all()}
    finally:
        await db.disconnect()
    assert SecretBox(NEW_KEY).decrypt(tokens["Housing"] or "") == "t1"
    assert SecretBox(NEW_KEY).decrypt(tokens["Benefits"] or "") == "t2"
    assert tokens["From the environment"] is None
    assert "Re-encrypted 2" in rotate_secrets(workdir, NEW_KEY, "").stdout  # safe to run again


# ---------------------------------------------------------------- rehashing


async def test_a_password_hashed_with_other_parameters_is_rehashed_at_sign_in(app: Starlette, make_staff) -> None:
    staff = await make_staff("advocate")
    weak = PasswordHasher(time_cost=2, memory_cost=64, parallelism=1).hash(PASSWORD)
    await Staff.filter(id=staff.id).update(password_hash=weak)
    assert PASSWORD_HASHER.check_needs_rehash(weak)

    assert await authenticate(staff.email, "not the password") is None
    assert (await Staff.get(id=staff.id)).password_hash == weak  # a failed sign-in changes nothing

    async with asgi_client(app) as http:
        response = await post_sign_in(http, staff.email)
    assert response.status_code == 303
    renewed = (await Staff.get(id=staff.id)).password_hash or ""
    assert renewed != weak and not PASSWORD_HASHER.check_needs_rehash(renewed)
    assert PASSWORD_HASHER.verify(renewed, PASSWORD)
    assert await authenticate(staff.email, PASSWORD) is not None
    assert (await Staff.get(id=staff.id)).password_hash == renewed  # current parameters: left alone


def test_passwords_are_hashed_at_argon2_cffis_recommended_cost_unless_a_profile_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ARGON2_PROFILE_VARIABLE)
    assert hasher_from_environment().hash(PASSWORD).startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    monkeypatch.setenv(ARGON2_PROFILE_VARIABLE, "CHEAPEST")
    assert hasher_from_environment().hash(PASSWORD).startswith("$argon2id$v=19$m=8,t=1,p=1$")
    monkeypatch.setenv(ARGON2_PROFILE_VARIABLE, "FAST")
    with pytest.raises(RuntimeError, match="'FAST' is not an argon2 profile"):
        hasher_from_environment()
