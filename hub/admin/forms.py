"""The admin's forms (Flask-WTF): every POST form carries a CSRF token; GET filters do not need one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from wtforms import Field, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from hub.domain.errors import AbohubError

PERIODS = [
    SelectChoice("12m", "12 months"),
    SelectChoice("year", "Year"),
    SelectChoice("quarter", "Quarter"),
    SelectChoice("month", "Month"),
]


class LoginForm(FlaskForm):
    username = StringField(
        "Username", validators=[DataRequired(), Length(max=64)], render_kw={"autocomplete": "username"}
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


class PeriodForm(FlaskForm):
    """The dashboard's period, read from the query string."""

    class Meta:
        csrf = False

    period = SelectField("Period", choices=PERIODS, default="12m")
    month = StringField(
        "Month",
        render_kw={"type": "month", "placeholder": "YYYY-MM"},
        validators=[Optional(), Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", message="use a month such as 2026-03")],
    )
    currency = SelectField("Currency", validate_choice=True)


class Same:
    """A WTForms validator running one of marshmallow's: a form refuses what the API refuses, in its words."""

    def __init__(self, check: Callable[[Any], Any]) -> None:
        self.check = check

    def __call__(self, form: FlaskForm, field: Field) -> None:
        if field.data in (None, ""):
            return
        try:
            self.check(field.data)
        except SchemaError as error:
            raise ValidationError(" ".join(str(message) for message in error.messages)) from error


def place_field_errors(form: FlaskForm, error: AbohubError) -> bool:
    """Put a service error's field messages next to the form's fields; False when it names none of them."""
    placed = False
    for name, messages in error.fields.items():
        if name in form:
            form[name].errors = [*form[name].errors, *messages]
            placed = True
    return placed
