"""Subscriptions: a filtered, paged list; one subscription with the actions an admin takes on it.

Every action calls the same service function as the REST API (``hub.api.subscriptions``) through a unit of
work acting as the staff user, then collects what the change invoiced, as the API does. A domain error
lands next to the field it names, or as a flash message when it names none; never a 500.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.exceptions import NotFound
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from hub.admin.auth import requires
from hub.admin.context import hub, uow
from hub.admin.forms import ActionForm, place_field_errors
from hub.admin.tables import Sorting, paged
from hub.domain.errors import AbohubError
from hub.domain.lifecycle import Status
from hub.services import payments
from hub.services import subscriptions as subs
from hub.store.models import Coupon, Customer, Plan, Subscription

SORTING = Sorting(
    {
        "created": Subscription.created_at,
        "mrr": Subscription.mrr,
        "status": Subscription.status,
        "customer": Customer.name,
        "period_end": Subscription.current_period_end,
    },
    default="created",
    default_descending=True,
)
REASON_CHOICES = [
    SelectChoice("", "Choose a reason"),
    *(SelectChoice(r, r.replace("_", " ")) for r in subs.CANCEL_REASONS),
]


class StatusFilterForm(FlaskForm):
    class Meta:
        csrf = False

    status = SelectField(
        "Status",
        choices=[SelectChoice("", "Any"), *(SelectChoice(s.value, s.value) for s in Status)],
        default="",
    )


class PauseForm(FlaskForm):
    at_period_end = BooleanField("At the end of the current period")


class ChangePlanForm(FlaskForm):
    # The service decides which plans are usable and says why one is not; the choices only help.
    plan_id = SelectField(
        "New plan", validators=[DataRequired(message="choose a plan")], validate_choice=False
    )
    quantity = IntegerField("Quantity", validators=[Optional(), NumberRange(min=1, max=100_000)])
    invoice_now = BooleanField("Invoice the difference now")
    confirm = HiddenField()


class CancelForm(FlaskForm):
    reason = SelectField(
        "Reason", choices=REASON_CHOICES, validators=[DataRequired(message="choose a reason")]
    )
    feedback = TextAreaField("The customer's feedback", validators=[Optional(), Length(max=2000)])
    at_period_end = BooleanField("At the end of the current period (otherwise now)")


class CouponForm(FlaskForm):
    coupon_code = StringField(
        "Coupon code", validators=[DataRequired(message="enter a code"), Length(max=64)]
    )


def subscriptions() -> ResponseReturnValue:
    form = StatusFilterForm(formdata=request.args or None)
    valid = not request.args or form.validate()
    status = form.status.data if valid else ""
    query = (
        select(Subscription, Customer, Plan)
        .join(Customer, Customer.id == Subscription.customer_id)
        .join(Plan, Plan.id == Subscription.plan_id)
    )
    if status:
        query = query.where(Subscription.status == status)
    with hub().session_factory() as session:
        table = paged(session, query, SORTING, Subscription.id, request.args, {"status": status or ""})
    return render_template("admin/subscriptions.html", form=form, table=table), 200 if valid else 400


def _forms(subscription: Subscription, plans: list[Plan]) -> dict[str, FlaskForm]:
    change = ChangePlanForm(formdata=None, prefix="change")
    change.plan_id.choices = [
        SelectChoice("", "Choose a plan"),
        *(SelectChoice(p.id, p.name) for p in plans if p.id != subscription.plan_id),
    ]
    return {
        "pause_form": PauseForm(formdata=None, prefix="pause"),
        "change_form": change,
        "cancel_form": CancelForm(formdata=None, prefix="cancel"),
        "coupon_form": CouponForm(formdata=None, prefix="coupon"),
        "action": ActionForm(formdata=None),
    }


def _detail_page(subscription_id: str, status: int = 200, **replaced: FlaskForm) -> ResponseReturnValue:
    """The detail page; ``replaced`` are forms that were posted and come back with their errors."""
    with hub().session_factory() as session:
        subscription = session.get(Subscription, subscription_id)
        if subscription is None:
            raise NotFound()
        customer = session.get(Customer, subscription.customer_id)
        plan = session.get(Plan, subscription.plan_id)
        coupon = session.get(Coupon, subscription.coupon_id) if subscription.coupon_id else None
        plans = list(
            session.scalars(
                select(Plan)
                .where(Plan.active.is_(True), Plan.currency == subscription.currency)
                .order_by(Plan.name, Plan.id)
            )
        )
    forms = _forms(subscription, plans)
    for name, form in replaced.items():
        if isinstance(form, ChangePlanForm):
            form.plan_id.choices = forms["change_form"].plan_id.choices  # type: ignore[attr-defined]
            form.confirm.data = ""  # back on the page, a change needs a fresh preview
        forms[name] = form
    page = render_template(
        "admin/subscription.html",
        subscription=subscription,
        customer=customer,
        plan=plan,
        coupon=coupon,
        **forms,
    )
    return page, status


def _done(subscription_id: str, message: str) -> ResponseReturnValue:
    flash(message, "success")
    return redirect(url_for("admin.subscriptions_detail", subscription_id=subscription_id))


def _refused(subscription_id: str, error: AbohubError) -> ResponseReturnValue:
    flash(error.message, "error")
    return redirect(url_for("admin.subscriptions_detail", subscription_id=subscription_id))


def _settle(outcome: subs.Outcome) -> None:
    """Collect what the change invoiced, as the API does."""
    if outcome.invoice_ids:
        payments.collect_due(uow(), outcome.invoice_ids)


def _act(
    subscription_id: str, form: FlaskForm, form_name: str, change: Any, message: str
) -> ResponseReturnValue:
    """Validate ``form``, run ``change()`` (a service call) and redirect; errors go back on the page."""
    if not form.validate():
        return _detail_page(subscription_id, 400, **{form_name: form})
    try:
        _settle(change())
    except AbohubError as error:
        if place_field_errors(form, error):
            return _detail_page(subscription_id, 400, **{form_name: form})
        return _refused(subscription_id, error)
    return _done(subscription_id, message)


def subscription_detail(subscription_id: str) -> ResponseReturnValue:
    return _detail_page(subscription_id)


@requires("admin")
def subscription_pause(subscription_id: str) -> ResponseReturnValue:
    form = PauseForm(prefix="pause")

    def change() -> subs.Outcome:
        command = subs.PauseSubscription(subscription_id, at_period_end=bool(form.at_period_end.data))
        return subs.pause_subscription(command, uow())

    later = "will pause at the end of its period" if form.at_period_end.data else "is paused"
    return _act(subscription_id, form, "pause_form", change, f"The subscription {later}.")


@requires("admin")
def subscription_resume(subscription_id: str) -> ResponseReturnValue:
    form = ActionForm()

    def change() -> subs.Outcome:
        return subs.resume_subscription(subs.ResumeSubscription(subscription_id), uow())

    message = "The subscription is running again; its new period is invoiced."
    return _act(subscription_id, form, "action", change, message)


@requires("admin")
def subscription_reactivate(subscription_id: str) -> ResponseReturnValue:
    form = ActionForm()

    def change() -> subs.Outcome:
        return subs.reactivate_subscription(subs.ReactivateSubscription(subscription_id), uow())

    return _act(subscription_id, form, "action", change, "The scheduled change is undone.")


@requires("admin")
def subscription_cancel(subscription_id: str) -> ResponseReturnValue:
    form = CancelForm(prefix="cancel")

    def change() -> subs.Outcome:
        command = subs.CancelSubscription(
            subscription_id,
            reason=form.reason.data or "",
            feedback=(form.feedback.data or "").strip() or None,
            at_period_end=bool(form.at_period_end.data),
        )
        return subs.cancel_subscription(command, uow())

    later = "will be canceled at the end of its period" if form.at_period_end.data else "is canceled"
    return _act(subscription_id, form, "cancel_form", change, f"The subscription {later}.")


@requires("admin")
def subscription_apply_coupon(subscription_id: str) -> ResponseReturnValue:
    form = CouponForm(prefix="coupon")

    def change() -> subs.Outcome:
        code = (form.coupon_code.data or "").strip()
        return subs.apply_coupon(subs.ApplyCoupon(subscription_id, coupon_code=code), uow())

    return _act(subscription_id, form, "coupon_form", change, "The coupon applies to the coming invoices.")


@requires("admin")
def subscription_change_plan(subscription_id: str) -> ResponseReturnValue:
    """Two steps: the first post shows what the change would credit and charge; only the confirmation
    (which carries the same choices back) changes anything."""
    form = ChangePlanForm(prefix="change")
    if not form.validate():
        return _detail_page(subscription_id, 400, change_form=form)
    command = subs.ChangePlan(
        subscription_id,
        plan_id=form.plan_id.data or "",
        quantity=form.quantity.data or None,
        invoice_now=bool(form.invoice_now.data),
    )
    if form.confirm.data != "yes":
        try:
            preview = subs.preview_change(command, uow())
        except AbohubError as error:
            if place_field_errors(form, error):
                return _detail_page(subscription_id, 400, change_form=form)
            return _refused(subscription_id, error)
        return _preview_page(subscription_id, form, preview)
    try:
        _settle(subs.change_plan(command, uow()))
    except AbohubError as error:
        if place_field_errors(form, error):
            return _detail_page(subscription_id, 400, change_form=form)
        return _refused(subscription_id, error)
    return _done(subscription_id, "The plan is changed.")


def _preview_page(
    subscription_id: str, form: ChangePlanForm, preview: subs.ChangePreview
) -> ResponseReturnValue:
    with hub().session_factory() as session:
        subscription = session.get(Subscription, subscription_id)
        new_plan = session.get(Plan, form.plan_id.data)
        old_plan = session.get(Plan, subscription.plan_id) if subscription else None
    form.confirm.data = "yes"
    return render_template(
        "admin/change_plan.html",
        subscription=subscription,
        old_plan=old_plan,
        new_plan=new_plan,
        preview=preview,
        form=form,
    )


def init_app(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/subscriptions", "subscriptions", subscriptions)
    blueprint.add_url_rule("/subscriptions/<subscription_id>", "subscriptions_detail", subscription_detail)
    actions = {
        "pause": subscription_pause,
        "resume": subscription_resume,
        "reactivate": subscription_reactivate,
        "cancel": subscription_cancel,
        "change-plan": subscription_change_plan,
        "apply-coupon": subscription_apply_coupon,
    }
    for path, view in actions.items():
        endpoint = "subscriptions_" + path.replace("-", "_")
        blueprint.add_url_rule(f"/subscriptions/<subscription_id>/{path}", endpoint, view, methods=["POST"])
