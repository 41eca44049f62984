"""Connecting WeCom apps: the command, validation, secrets encrypted at rest and masked in the admin."""

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_context

from conversations import encryption
from conversations.models import WeComApp
from testing.factories import APP_SECRET, WeComAppFactory
from testing.vectors import AES_KEY, CORP_ID, TOKEN

pytestmark = pytest.mark.django_db


def wecom(*args) -> str:
    out = StringIO()
    call_command("wecom", *args, stdout=out)
    return out.getvalue()


GOOD = ["--corp-id", CORP_ID, "--secret", APP_SECRET, "--token", TOKEN, "--aes-key", AES_KEY]


def test_add_app_prints_the_callback_url(tenant_a):
    output = wecom("add-app", "alpha", "--kind", "app", "--agent-id", "1000002", "--name", "客服助手", *GOOD)
    with schema_context("alpha"):
        app = WeComApp.objects.get()
    assert (app.kind, app.corp_id, app.agent_id, app.name) == ("app", CORP_ID, 1000002, "客服助手")
    assert f"http://localhost:8000/t/alpha/wecom/callback/{app.callback_id}/" in output
    listing = wecom("list-apps", "alpha")
    assert app.callback_id in listing and APP_SECRET not in listing and AES_KEY not in listing


def test_add_kf_account(tenant_a):
    wecom("add-app", "alpha", "--kind", "kf", "--open-kfid", "wkA1", "--open-kfid", "wkB2", *GOOD)
    with schema_context("alpha"):
        assert WeComApp.objects.get().open_kfids == ["wkA1", "wkB2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "app", "--corp-id", CORP_ID, "--secret", "s", "--token", TOKEN, "--aes-key", "short"],
         "43 characters"),
        (["--kind", "app", "--corp-id", CORP_ID, "--secret", "s", "--token", TOKEN, "--aes-key", "!" * 43],
         "43 characters"),
        (["--kind", "app", *GOOD], "AgentID is required"),
        (["--kind", "app", "--agent-id", "abc", *GOOD], "must be a number"),
        (["--kind", "kf", *GOOD], "open_kfid"),
        (["--kind", "app", "--agent-id", "1", "--corp-id", "", "--secret", "s", "--token", TOKEN,
          "--aes-key", AES_KEY], "CorpID"),
        (["--kind", "app", "--agent-id", "1", "--corp-id", CORP_ID, "--secret", "", "--token", TOKEN,
          "--aes-key", AES_KEY], "Secret"),
        (["--kind", "app", "--agent-id", "1", "--corp-id", CORP_ID, "--secret", "s", "--token", "bad token!",
          "--aes-key", AES_KEY], "Token"),
    ],
)
def test_add_app_refuses_bad_input_and_saves_nothing(tenant_a, args, message):
    with pytest.raises(CommandError, match=message):
        wecom("add-app", "alpha", *args)
    with schema_context("alpha"):
        assert WeComApp.objects.count() == 0


def test_add_app_to_unknown_tenant(tenants_world):
    with pytest.raises(CommandError, match="No tenant"):
        wecom("add-app", "nosuch", "--kind", "app", "--agent-id", "1", *GOOD)
    with pytest.raises(CommandError, match="No tenant"):
        wecom("list-apps", "public")


def test_the_same_app_twice_is_refused(tenant_a):
    wecom("add-app", "alpha", "--kind", "app", "--agent-id", "5", *GOOD)
    with pytest.raises(CommandError, match="already connected"):
        wecom("add-app", "alpha", "--kind", "app", "--agent-id", "5", *GOOD)


def raw_columns(schema: str, pk: int) -> tuple[str, str, str]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT secret, token, encoding_aes_key FROM "{schema}".conversations_wecomapp WHERE id=%s',
                       [pk])
        return cursor.fetchone()


def test_secrets_are_encrypted_at_rest(tenant_a):
    with schema_context("alpha"):
        app = WeComAppFactory()
    stored = raw_columns("alpha", app.pk)
    for plaintext, ciphertext in zip((APP_SECRET, TOKEN, AES_KEY), stored, strict=True):
        assert plaintext not in ciphertext
        assert encryption.decrypt(ciphertext) == plaintext


def test_key_rotation_reencrypts_with_the_newest_key(tenant_a, settings):
    with schema_context("alpha"):
        app = WeComAppFactory()
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    encryption.key_ring.cache_clear()
    try:
        wecom("rotate-keys")
        stored = raw_columns("alpha", app.pk)
        assert Fernet(new_key.encode()).decrypt(stored[0].encode()).decode() == APP_SECRET
        settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key can now be dropped
        encryption.key_ring.cache_clear()
        with schema_context("alpha"):
            assert WeComApp.objects.get(pk=app.pk).encoding_aes_key == AES_KEY
    finally:
        encryption.key_ring.cache_clear()


def test_admin_masks_secrets_and_shows_the_callback_url(admin_client):
    with schema_context("alpha"):
        app = WeComAppFactory()
    page = admin_client.get(f"/t/alpha/admin/conversations/wecomapp/{app.pk}/change/")
    assert page.status_code == 200
    for secret in (APP_SECRET, TOKEN, AES_KEY):
        assert secret not in page.text
    assert f"/t/alpha/wecom/callback/{app.callback_id}/" in page.text
    listing = admin_client.get("/t/alpha/admin/conversations/wecomapp/")
    assert APP_SECRET not in listing.text and app.callback_id in listing.text


def test_admin_edit_keeps_secrets_left_empty_and_validates(admin_client):
    with schema_context("alpha"):
        app = WeComAppFactory()
    url = f"/t/alpha/admin/conversations/wecomapp/{app.pk}/change/"
    form = {"name": "renamed", "kind": "app", "corp_id": CORP_ID, "agent_id": "1000002", "open_kfids": "",
            "secret": "", "token": "", "encoding_aes_key": "", "is_enabled": "on"}
    assert admin_client.post(url, form).status_code == 302
    with schema_context("alpha"):
        app.refresh_from_db()
    assert (app.name, app.secret, app.encoding_aes_key) == ("renamed", APP_SECRET, AES_KEY)

    bad = admin_client.post(url, {**form, "encoding_aes_key": "too-short"})
    assert bad.status_code == 200 and "43 characters" in bad.text
    with schema_context("alpha"):
        app.refresh_from_db()
    assert app.encoding_aes_key == AES_KEY


def test_admin_adds_an_app(admin_client):
    form = {"name": "kf", "kind": "kf", "corp_id": CORP_ID, "agent_id": "", "open_kfids": "wkA1\nwkB2",
            "secret": APP_SECRET, "token": TOKEN, "encoding_aes_key": AES_KEY, "is_enabled": "on"}
    assert admin_client.post("/t/alpha/admin/conversations/wecomapp/add/", form).status_code == 302
    with schema_context("alpha"):
        app = WeComApp.objects.get()
    assert app.open_kfids == ["wkA1", "wkB2"] and app.secret == APP_SECRET
