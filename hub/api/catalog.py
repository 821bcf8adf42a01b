"""/api/v1/products, /api/v1/plans, /api/v1/coupons"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from hub.api.context import fetch, hub, uow
from hub.api.pagination import filtered, page
from hub.api.schemas import (
    ActiveFilter,
    CouponSchema,
    CouponUpdateSchema,
    PlanFilter,
    PlanSchema,
    PlanUpdateSchema,
    ProductSchema,
    ProductUpdateSchema,
    page_of,
)
from hub.services import catalog
from hub.store.models import Coupon, Plan, Product

blp = Blueprint("catalog", __name__, url_prefix="/api/v1", description="Products, plans and coupons")


@blp.route("/products")
class Products(MethodView):
    @blp.arguments(ActiveFilter, location="query")
    @blp.response(200, page_of(ProductSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List products"""
        with hub().session_factory() as session:
            return page(
                session,
                filtered(select(Product), args, active=Product.active),
                Product.id,
                args,
                Product.created_at,
            )

    @blp.arguments(ProductSchema)
    @blp.response(201, ProductSchema)
    def post(self, data: dict[str, Any]) -> Product:
        """Create a product"""
        return catalog.create_product(catalog.CreateProduct(**data), uow())


@blp.route("/products/<product_id>")
class ProductById(MethodView):
    @blp.response(200, ProductSchema)
    def get(self, product_id: str) -> Product:
        """Get a product"""
        return fetch(Product, product_id, "product")

    @blp.arguments(ProductUpdateSchema)
    @blp.response(200, ProductSchema)
    def patch(self, data: dict[str, Any], product_id: str) -> Product:
        """Rename, describe or archive a product"""
        return catalog.update_product(catalog.Update(product_id, data), uow())


@blp.route("/plans")
class Plans(MethodView):
    @blp.arguments(PlanFilter, location="query")
    @blp.response(200, page_of(PlanSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List plans"""
        with hub().session_factory() as session:
            query = filtered(
                select(Plan), args, product_id=Plan.product_id, currency=Plan.currency, active=Plan.active
            )
            return page(session, query, Plan.id, args, Plan.created_at)

    @blp.arguments(PlanSchema)
    @blp.response(201, PlanSchema)
    def post(self, data: dict[str, Any]) -> Plan:
        """Create a plan (price, currency and interval never change afterwards)"""
        return catalog.create_plan(catalog.CreatePlan(**data), uow())


@blp.route("/plans/<plan_id>")
class PlanById(MethodView):
    @blp.response(200, PlanSchema)
    def get(self, plan_id: str) -> Plan:
        """Get a plan"""
        return fetch(Plan, plan_id, "plan")

    @blp.arguments(PlanUpdateSchema)
    @blp.response(200, PlanSchema)
    def patch(self, data: dict[str, Any], plan_id: str) -> Plan:
        """Rename a plan, change its trial, or archive it"""
        return catalog.update_plan(catalog.Update(plan_id, data), uow())


@blp.route("/coupons")
class Coupons(MethodView):
    @blp.arguments(ActiveFilter, location="query")
    @blp.response(200, page_of(CouponSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List coupons"""
        with hub().session_factory() as session:
            return page(
                session,
                filtered(select(Coupon), args, active=Coupon.active),
                Coupon.id,
                args,
                Coupon.created_at,
            )

    @blp.arguments(CouponSchema)
    @blp.response(201, CouponSchema)
    def post(self, data: dict[str, Any]) -> Coupon:
        """Create a coupon: percent or amount off, once, for N periods, or forever"""
        return catalog.create_coupon(catalog.CreateCoupon(**data), uow())


@blp.route("/coupons/<coupon_id>")
class CouponById(MethodView):
    @blp.response(200, CouponSchema)
    def get(self, coupon_id: str) -> Coupon:
        """Get a coupon"""
        return fetch(Coupon, coupon_id, "coupon")

    @blp.arguments(CouponUpdateSchema)
    @blp.response(200, CouponSchema)
    def patch(self, data: dict[str, Any], coupon_id: str) -> Coupon:
        """Rename, limit or archive a coupon"""
        return catalog.update_coupon(catalog.Update(coupon_id, data), uow())
