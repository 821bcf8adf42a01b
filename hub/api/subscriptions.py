"""/api/v1/subscriptions and their actions."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from hub.api.context import fetch, hub, uow
from hub.api.pagination import filtered, page
from hub.api.schemas import (
    ApplyCouponSchema,
    CancelSchema,
    ChangePlanSchema,
    EmptySchema,
    PauseSchema,
    PreviewSchema,
    SubscriptionFilter,
    SubscriptionSchema,
    page_of,
)
from hub.services import payments
from hub.services import subscriptions as subs
from hub.store.models import Subscription

blp = Blueprint("subscriptions", __name__, url_prefix="/api/v1/subscriptions", description="Subscriptions")


def _fetch(subscription_id: str) -> Subscription:
    return fetch(Subscription, subscription_id, "subscription")


def _settle(outcome: subs.Outcome) -> Subscription:
    """Collect what the change invoiced (through the gateway), then return the subscription."""
    if outcome.invoice_ids:
        payments.collect_due(uow(), outcome.invoice_ids)
    return _fetch(outcome.subscription_id)


@blp.route("")
class Subscriptions(MethodView):
    @blp.arguments(SubscriptionFilter, location="query")
    @blp.response(200, page_of(SubscriptionSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List subscriptions; filter by customer, plan, status, creation time"""
        with hub().session_factory() as session:
            query = filtered(
                select(Subscription),
                args,
                customer_id=Subscription.customer_id,
                plan_id=Subscription.plan_id,
                status=Subscription.status,
            )
            return page(session, query, Subscription.id, args, Subscription.created_at)

    @blp.arguments(SubscriptionSchema)
    @blp.response(201, SubscriptionSchema)
    def post(self, data: dict[str, Any]) -> Subscription:
        """Subscribe a customer to a plan (with a trial, a coupon, or a backdated start)"""
        data["metadata"] = data.pop("meta", {})
        return _settle(subs.create_subscription(subs.CreateSubscription(**data), uow()))


@blp.route("/<subscription_id>")
class SubscriptionById(MethodView):
    @blp.response(200, SubscriptionSchema)
    def get(self, subscription_id: str) -> Subscription:
        """Get a subscription"""
        return _fetch(subscription_id)


@blp.route("/<subscription_id>/pause", methods=["POST"])
@blp.arguments(PauseSchema)
@blp.response(200, SubscriptionSchema)
def pause(data: dict[str, Any], subscription_id: str) -> Subscription:
    """Pause now or at period end, open-ended or until resume_at; billing stops while paused"""
    return _settle(subs.pause_subscription(subs.PauseSubscription(subscription_id, **data), uow()))


@blp.route("/<subscription_id>/resume", methods=["POST"])
@blp.arguments(EmptySchema)
@blp.response(200, SubscriptionSchema)
def resume(data: dict[str, Any], subscription_id: str) -> Subscription:
    """Resume a paused subscription now: a new period starts and is invoiced"""
    return _settle(subs.resume_subscription(subs.ResumeSubscription(subscription_id), uow()))


@blp.route("/<subscription_id>/cancel", methods=["POST"])
@blp.arguments(CancelSchema)
@blp.response(200, SubscriptionSchema)
def cancel(data: dict[str, Any], subscription_id: str) -> Subscription:
    """Cancel now or at period end, with a reason code and the customer's feedback"""
    return _settle(subs.cancel_subscription(subs.CancelSubscription(subscription_id, **data), uow()))


@blp.route("/<subscription_id>/reactivate", methods=["POST"])
@blp.arguments(EmptySchema)
@blp.response(200, SubscriptionSchema)
def reactivate(data: dict[str, Any], subscription_id: str) -> Subscription:
    """Undo a cancellation or pause scheduled for the period end"""
    return _settle(subs.reactivate_subscription(subs.ReactivateSubscription(subscription_id), uow()))


@blp.route("/<subscription_id>/change-plan", methods=["POST"])
@blp.arguments(ChangePlanSchema)
@blp.response(200, SubscriptionSchema)
def change_plan(data: dict[str, Any], subscription_id: str) -> Subscription:
    """Move to another plan or quantity, prorated to the second (next invoice or invoiced now)"""
    return _settle(subs.change_plan(subs.ChangePlan(subscription_id, **data), uow()))


@blp.route("/<subscription_id>/change-plan/preview", methods=["POST"])
@blp.arguments(ChangePlanSchema)
@blp.response(200, PreviewSchema)
def preview_change_plan(data: dict[str, Any], subscription_id: str) -> dict[str, Any]:
    """What a plan change would credit and charge, without changing anything"""
    preview = subs.preview_change(subs.ChangePlan(subscription_id, **data), uow())
    return {
        "invoice_now": preview.invoice_now,
        "total": preview.total,
        "lines": preview.lines,
        "new_period_start": preview.new_period_start,
        "new_period_end": preview.new_period_end,
    }


@blp.route("/<subscription_id>/apply-coupon", methods=["POST"])
@blp.arguments(ApplyCouponSchema)
@blp.response(200, SubscriptionSchema)
def apply_coupon(data: dict[str, Any], subscription_id: str) -> Subscription:
    """Apply a coupon (e.g. a loyalty reward) to the coming invoices"""
    return _settle(subs.apply_coupon(subs.ApplyCoupon(subscription_id, **data), uow()))
