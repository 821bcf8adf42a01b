"""Settings are read once, strictly, from ABOHUB_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import SettingsError, load_settings


def test_defaults_are_the_embedded_setup():
    settings = load_settings({})
    assert settings.is_sqlite
    assert settings.database_url == f"sqlite:///{Path('var/abohub.db').resolve()}"
    assert settings.redis_url is None
    assert settings.default_currency == "DKK"
    assert settings.dunning_retry_days == (1, 3, 5, 7)


def test_values_are_parsed():
    settings = load_settings(
        {
            "ABOHUB_DATABASE_URL": "postgresql://db/abohub",
            "ABOHUB_SECRET_KEY": "s3cret",
            "ABOHUB_DUNNING_RETRY_DAYS": "2,4,8",
            "ABOHUB_BILLING_TIMEZONE": "Europe/Copenhagen",
            "ABOHUB_LOG_JSON": "yes",
        }
    )
    assert not settings.is_sqlite
    assert settings.dunning_retry_days == (2, 4, 8)
    assert settings.billing_timezone == "Europe/Copenhagen"
    assert settings.log_json is True


def test_an_unknown_variable_is_an_error_that_names_it():
    with pytest.raises(SettingsError, match="ABOHUB_DATABSE_URL"):
        load_settings({"ABOHUB_DATABSE_URL": "sqlite://"})


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("ABOHUB_DUNNING_RETRY_DAYS", "3,1", "increasing"),
        ("ABOHUB_BILLING_TIMEZONE", "Mars/Olympus", "IANA"),
        ("ABOHUB_DEFAULT_CURRENCY", "dkk", "ISO 4217"),
        ("ABOHUB_BILLING_BATCH_SIZE", "0", "positive"),
        ("ABOHUB_LOG_JSON", "maybe", "true or false"),
        ("ABOHUB_DUNNING_FINAL_ACTION", "shrug", "cancel"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_is_expected(name, value, says):
    with pytest.raises(SettingsError, match=says) as raised:
        load_settings({name: value})
    assert name in str(raised.value)


def test_a_server_database_needs_a_real_secret_key():
    with pytest.raises(SettingsError, match="ABOHUB_SECRET_KEY"):
        load_settings({"ABOHUB_DATABASE_URL": "postgresql://db/abohub"})


def test_secret_values_are_not_echoed_in_errors():
    with pytest.raises(SettingsError) as raised:
        load_settings({"ABOHUB_DATABASE_URL": "postgresql://u:pw@db/x", "ABOHUB_BILLING_BATCH_SIZE": "x"})
    assert "pw" not in str(raised.value)
