"""Request and response schemas for the REST API (and so for its OpenAPI document)."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from hub.api.fields import Count, Currency, Ident, Metadata, Money, Percent, Text, Timestamp
from hub.services.credit_notes import CREDIT_REASONS
from hub.services.subscriptions import CANCEL_REASONS

STATUSES = ("trialing", "active", "past_due", "paused", "canceled")
INVOICE_STATUSES = ("draft", "open", "paid", "void", "uncollectible")
INTERVALS = ("month", "quarter", "year")


def CouponCode(**kwargs: object) -> fields.String:
    return fields.String(
        validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$", error="letters, digits, - and _ only (max 64)"),
        **kwargs,  # type: ignore[arg-type]
    )


class Strict(Schema):
    class Meta:
        unknown = RAISE
        ordered = True


# --- pagination and filters ---------------------------------------------------


class PageArgs(Strict):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    starting_after = Ident(metadata={"description": "Cursor: the id of the last item of the previous page"})


class CreatedRange(PageArgs):
    created_gte = Timestamp()
    created_lt = Timestamp()


class CustomerFilter(CreatedRange):
    email = Text(320)


class SubscriptionFilter(CreatedRange):
    customer_id = Ident()
    plan_id = Ident()
    status = fields.String(validate=validate.OneOf(STATUSES))


class InvoiceFilter(CreatedRange):
    customer_id = Ident()
    subscription_id = Ident()
    status = fields.String(validate=validate.OneOf(INVOICE_STATUSES))


class PlanFilter(CreatedRange):
    product_id = Ident()
    currency = Currency()
    active = fields.Boolean()


class ActiveFilter(CreatedRange):
    active = fields.Boolean()


class CreditNoteFilter(CreatedRange):
    customer_id = Ident()
    invoice_id = Ident()


class PaymentFilter(CreatedRange):
    customer_id = Ident()
    invoice_id = Ident()
    kind = fields.String(validate=validate.OneOf(("payment", "refund")))


class EventFilter(PageArgs):
    customer_id = Ident()
    aggregate_type = Text(32)
    aggregate_id = Text(40)
    type = Text(64)
    occurred_gte = Timestamp()
    occurred_lt = Timestamp()
    starting_after = fields.Integer(strict=False, validate=validate.Range(min=1, max=2**62))


def page_of(item_schema: type[Schema]) -> type[Schema]:
    return type(
        f"{item_schema.__name__.removesuffix('Schema')}Page",
        (Schema,),
        {
            "data": fields.List(fields.Nested(item_schema), required=True),
            "has_more": fields.Boolean(required=True),
            "next_cursor": fields.String(allow_none=True, required=True),
        },
    )


# --- customers ----------------------------------------------------------------


class CustomerSchema(Schema):
    id = fields.String(dump_only=True)
    name = Text(200, min_length=1, required=True)
    email = fields.Email(required=True, validate=validate.Length(max=320))
    country = fields.String(
        load_default="DK", validate=validate.Regexp(r"^[A-Z]{2}$", error="must be an ISO 3166 code like DK")
    )
    vat_number = Text(32, allow_none=True)
    currency = Currency(load_default="DKK")
    locale = fields.String(
        load_default="da_DK",
        validate=validate.Regexp(r"^[a-z]{2,3}([_-][A-Z]{2})?$", error="must be a locale like da_DK"),
    )
    address_line1 = Text(200, allow_none=True)
    address_line2 = Text(200, allow_none=True)
    postal_code = Text(20, allow_none=True)
    city = Text(100, allow_none=True)
    metadata = Metadata(load_default=dict)
    mrr = fields.Integer(dump_only=True, metadata={"description": "Current MRR in minor units"})
    revenue_state = fields.String(dump_only=True)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)

    class Meta:
        unknown = RAISE
        ordered = True


class CustomerUpdateSchema(CustomerSchema):
    """A PATCH: only the fields given change (no field is required and no default fills in the rest)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("partial", True)  # marshmallow takes ``partial`` here, not as a Meta option
        super().__init__(*args, **kwargs)

    class Meta:
        unknown = RAISE
        ordered = True

    @validates_schema
    def not_empty(self, data: dict, **kwargs: object) -> None:
        if not data:
            raise ValidationError("give at least one field to change", field_name="_schema")


# --- catalog ------------------------------------------------------------------


class ProductSchema(Strict):
    id = fields.String(dump_only=True)
    name = Text(200, min_length=1, required=True)
    description = Text(2000, allow_none=True)
    active = fields.Boolean(dump_only=True)
    metadata = Metadata(load_default=dict)
    created_at = Timestamp(dump_only=True)


class ProductUpdateSchema(Strict):
    name = Text(200, min_length=1)
    description = Text(2000, allow_none=True)
    active = fields.Boolean()
    metadata = Metadata()


class PlanSchema(Strict):
    id = fields.String(dump_only=True)
    product_id = Ident(required=True)
    name = Text(200, min_length=1, required=True)
    amount = Money(required=True, metadata={"description": "Price per period in minor units, excl. VAT"})
    currency = Currency(required=True)
    interval = fields.String(required=True, validate=validate.OneOf(INTERVALS))
    interval_count = Count(load_default=1, minimum=1, maximum=36)
    trial_days = Count(load_default=0, maximum=730)
    vat_rate = Percent(load_default="25.00")
    active = fields.Boolean(dump_only=True)
    metadata = Metadata(load_default=dict)
    created_at = Timestamp(dump_only=True)


class PlanUpdateSchema(Strict):
    name = Text(200, min_length=1)
    trial_days = Count(maximum=730)
    active = fields.Boolean()
    metadata = Metadata()


class CouponSchema(Strict):
    id = fields.String(dump_only=True)
    code = CouponCode(required=True)
    name = Text(200, min_length=1, required=True)
    percent_off = Percent(allow_none=True)
    amount_off = Money(allow_none=True, minimum=1)
    currency = Currency(allow_none=True)
    duration = fields.String(required=True, validate=validate.OneOf(("once", "repeating", "forever")))
    duration_periods = Count(allow_none=True, minimum=1, maximum=120)
    max_redemptions = Count(allow_none=True, minimum=1, maximum=10**9)
    times_redeemed = fields.Integer(dump_only=True)
    redeem_by = Timestamp(allow_none=True)
    active = fields.Boolean(dump_only=True)
    created_at = Timestamp(dump_only=True)


class CouponUpdateSchema(Strict):
    name = Text(200, min_length=1)
    active = fields.Boolean()
    max_redemptions = Count(allow_none=True, minimum=1, maximum=10**9)
    redeem_by = Timestamp(allow_none=True)


# --- subscriptions --------------------------------------------------------------


class SubscriptionSchema(Strict):
    id = fields.String(dump_only=True)
    customer_id = Ident(required=True)
    plan_id = Ident(required=True)
    quantity = Count(load_default=1, minimum=1)
    trial_days = Count(
        load_only=True,
        allow_none=True,
        maximum=730,
        metadata={"description": "Overrides the plan's trial; 0 for none"},
    )
    start_at = Timestamp(
        load_only=True, allow_none=True, metadata={"description": "Backdate the start (never in the future)"}
    )
    coupon_code = CouponCode(load_only=True, allow_none=True)
    metadata = Metadata(load_default=dict)
    status = fields.String(dump_only=True)
    currency = fields.String(dump_only=True)
    started_at = Timestamp(dump_only=True)
    trial_end = Timestamp(dump_only=True)
    billing_anchor = Timestamp(dump_only=True)
    current_period_start = Timestamp(dump_only=True)
    current_period_end = Timestamp(dump_only=True)
    cancel_at_period_end = fields.Boolean(dump_only=True)
    pause_at_period_end = fields.Boolean(dump_only=True)
    paused_at = Timestamp(dump_only=True)
    resume_at = Timestamp(dump_only=True)
    canceled_at = Timestamp(dump_only=True)
    cancel_reason = fields.String(dump_only=True)
    cancel_feedback = fields.String(dump_only=True)
    coupon_id = fields.String(dump_only=True)
    coupon_periods_left = fields.Integer(dump_only=True)
    mrr = fields.Integer(dump_only=True)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)


class PauseSchema(Strict):
    at_period_end = fields.Boolean(load_default=False)
    resume_at = Timestamp(allow_none=True, load_default=None)


class CancelSchema(Strict):
    reason = fields.String(required=True, validate=validate.OneOf(CANCEL_REASONS))
    feedback = Text(2000, allow_none=True, load_default=None)
    at_period_end = fields.Boolean(load_default=False)


class ChangePlanSchema(Strict):
    plan_id = Ident(required=True)
    quantity = Count(minimum=1, allow_none=True, load_default=None)
    prorate = fields.Boolean(load_default=True)
    invoice_now = fields.Boolean(load_default=False)


class ApplyCouponSchema(Strict):
    coupon_code = CouponCode(required=True)


class EmptySchema(Strict):
    pass


# --- invoices, credit notes, payments ---------------------------------------------


class LineSchema(Schema):
    id = fields.String()
    position = fields.Integer()
    description = fields.String()
    kind = fields.String()
    quantity = fields.Integer()
    unit_amount = fields.Integer()
    amount = fields.Integer()
    discount_amount = fields.Integer()
    net_amount = fields.Integer()
    vat_rate = Percent()
    vat_amount = fields.Integer()
    total = fields.Integer()
    plan_id = fields.String(allow_none=True)
    period_start = Timestamp(allow_none=True)
    period_end = Timestamp(allow_none=True)


class CreditedLineSchema(Schema):
    id = fields.String()
    invoice_line_id = fields.String(allow_none=True)
    position = fields.Integer()
    description = fields.String()
    net_amount = fields.Integer()
    vat_rate = Percent()
    vat_amount = fields.Integer()
    total = fields.Integer()


class PreviewLineSchema(LineSchema):
    class Meta:
        exclude = ("id", "position", "discount_amount", "net_amount")


class InvoiceSchema(Schema):
    id = fields.String()
    number = fields.String(allow_none=True)
    customer_id = fields.String()
    subscription_id = fields.String(allow_none=True)
    status = fields.String()
    billing_reason = fields.String()
    currency = fields.String()
    subtotal = fields.Integer()
    discount = fields.Integer()
    vat = fields.Integer()
    total = fields.Integer()
    amount_paid = fields.Integer()
    amount_credited = fields.Integer()
    amount_due = fields.Integer()
    period_start = Timestamp(allow_none=True)
    period_end = Timestamp(allow_none=True)
    issued_at = Timestamp(allow_none=True)
    due_at = Timestamp(allow_none=True)
    paid_at = Timestamp(allow_none=True)
    voided_at = Timestamp(allow_none=True)
    attempt_count = fields.Integer()
    next_payment_attempt_at = Timestamp(allow_none=True)
    created_at = Timestamp()
    lines = fields.List(fields.Nested(LineSchema))


class InvoiceSummarySchema(InvoiceSchema):
    class Meta:
        exclude = ("lines",)


class OneOffLineSchema(Strict):
    description = Text(300, min_length=1, required=True)
    unit_amount = Money(required=True, minimum=-(10**12))
    quantity = Count(load_default=1, minimum=1, maximum=10_000)
    vat_rate = Percent(allow_none=True, load_default=None)


class CreateInvoiceSchema(Strict):
    customer_id = Ident(required=True)
    lines = fields.List(
        fields.Nested(OneOffLineSchema), required=True, validate=validate.Length(min=1, max=100)
    )
    finalize = fields.Boolean(load_default=False)


class CreditLineSchema(Strict):
    invoice_line_id = Ident(required=True)
    net_amount = Money(required=True, minimum=1)


class CreditNoteSchema(Strict):
    id = fields.String(dump_only=True)
    number = fields.String(dump_only=True)
    invoice_id = Ident(required=True)
    customer_id = fields.String(dump_only=True)
    currency = fields.String(dump_only=True)
    reason = fields.String(required=True, validate=validate.OneOf(CREDIT_REASONS))
    memo = Text(2000, allow_none=True, load_default=None)
    refund = fields.Boolean(load_only=True, load_default=True)
    lines = fields.List(
        fields.Nested(CreditLineSchema),
        load_only=True,
        allow_none=True,
        load_default=None,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Lines to credit; leave out to credit everything left"},
    )
    net_amount = fields.Integer(dump_only=True)
    vat = fields.Integer(dump_only=True)
    total = fields.Integer(dump_only=True)
    refunded = fields.Integer(dump_only=True)
    created_at = Timestamp(dump_only=True)
    credited_lines = fields.List(fields.Nested(CreditedLineSchema), attribute="lines", dump_only=True)


class PaymentSchema(Strict):
    id = fields.String(dump_only=True)
    invoice_id = Ident(required=True)
    customer_id = fields.String(dump_only=True)
    credit_note_id = fields.String(dump_only=True)
    kind = fields.String(dump_only=True)
    amount = Money(required=True, minimum=1)
    currency = fields.String(dump_only=True)
    method = fields.String(
        load_default="bank_transfer", validate=validate.OneOf(("bank_transfer", "cash", "mobilepay", "other"))
    )
    gateway_reference = Text(100, allow_none=True, load_default=None, data_key="reference")
    created_at = Timestamp(dump_only=True)


class AttemptSchema(Schema):
    id = fields.String()
    attempt_number = fields.Integer()
    status = fields.String()
    amount = fields.Integer()
    currency = fields.String()
    failure_code = fields.String(allow_none=True)
    failure_message = fields.String(allow_none=True)
    attempted_at = Timestamp()
    next_attempt_at = Timestamp(allow_none=True)


class CollectionSchema(Schema):
    attempted = fields.Integer()
    succeeded = fields.Integer()
    failed = fields.Integer()
    invoice = fields.Nested(InvoiceSchema)


# --- events and metrics -----------------------------------------------------------


class EventSchema(Schema):
    id = fields.Integer()
    type = fields.String()
    aggregate_type = fields.String()
    aggregate_id = fields.String()
    customer_id = fields.String(allow_none=True)
    actor = fields.String()
    occurred_at = Timestamp()
    recorded_at = Timestamp()
    data = fields.Dict()


class PreviewSchema(Schema):
    invoice_now = fields.Boolean()
    total = fields.Integer()
    lines = fields.List(fields.Nested(PreviewLineSchema))
    new_period_start = Timestamp(allow_none=True)
    new_period_end = Timestamp(allow_none=True)


class ErrorBody(Schema):
    type = fields.String(required=True)
    message = fields.String(required=True)
    field_errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), data_key="fields")


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBody, required=True)
