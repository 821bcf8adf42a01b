"""Secrets at rest: MultiFernet with rotation."""

from __future__ import annotations

import stat

import pytest

from config import load_settings
from hub.services.crypto import SecretBox, SecretsUnavailable, box_for, generate_key


def test_round_trip_and_the_ciphertext_hides_the_secret():
    box = SecretBox([generate_key()])
    token = box.encrypt({"access_token": "pat-na1-secret-value"})
    assert "pat-na1-secret-value" not in token
    assert box.decrypt(token) == {"access_token": "pat-na1-secret-value"}


def test_rotation_keeps_old_tokens_readable_then_moves_them_to_the_new_key():
    old, new = generate_key(), generate_key()
    token = SecretBox([old]).encrypt({"k": "v"})
    both = SecretBox([new, old])
    assert both.decrypt(token) == {"k": "v"}
    rotated = both.rotate(token)
    assert SecretBox([new]).decrypt(rotated) == {"k": "v"}
    with pytest.raises(SecretsUnavailable, match="cannot be decrypted"):
        SecretBox([old]).decrypt(rotated)


def test_a_bad_key_is_a_clear_error():
    with pytest.raises(SecretsUnavailable, match="not a Fernet key"):
        SecretBox(["not-a-key"])


def test_embedded_default_makes_a_private_key_file_once(tmp_path):
    settings = load_settings({}, var_dir=tmp_path)
    token = box_for(settings).encrypt({"a": 1})
    key_file = tmp_path / "encryption.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert box_for(settings).decrypt(token) == {"a": 1}


def test_a_server_database_needs_keys():
    settings = load_settings({}, database_url="postgresql://db/x", secret_key="s")
    with pytest.raises(SecretsUnavailable, match="ABOHUB_ENCRYPTION_KEYS"):
        box_for(settings)
