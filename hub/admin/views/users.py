"""Staff users: everyone sees who has access; admins disable and enable them.

Creating a user is `abohub users create` (the password never passes through a web form).
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from hub.admin.auth import requires
from hub.admin.context import uow
from hub.admin.forms import ActionForm
from hub.services.users import disable_user, enable_user, list_users


def users() -> ResponseReturnValue:
    return render_template("admin/users.html", users=list_users(uow()), action=ActionForm())


@requires("admin")
def users_disable(user_id: str) -> ResponseReturnValue:
    if user_id == current_user.id:
        flash("You cannot disable yourself; ask another admin.", "error")
        return redirect(url_for("admin.users"))
    user = disable_user(user_id, uow())
    flash(f"{user.username} is disabled and signed out everywhere.", "success")
    return redirect(url_for("admin.users"))


@requires("admin")
def users_enable(user_id: str) -> ResponseReturnValue:
    user = enable_user(user_id, uow())
    flash(f"{user.username} can sign in again.", "success")
    return redirect(url_for("admin.users"))


def init_app(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/users", "users", users)
    blueprint.add_url_rule("/users/<user_id>/disable", "users_disable", users_disable, methods=["POST"])
    blueprint.add_url_rule("/users/<user_id>/enable", "users_enable", users_enable, methods=["POST"])
