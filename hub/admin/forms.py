"""The admin's forms (Flask-WTF): every POST form carries a CSRF token; GET filters do not need one."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp

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
