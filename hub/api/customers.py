"""/api/v1/customers"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from hub.api.context import fetch, hub, uow
from hub.api.pagination import filtered, page
from hub.api.schemas import CustomerFilter, CustomerSchema, CustomerUpdateSchema, page_of
from hub.services import customers
from hub.store.models import Customer

blp = Blueprint("customers", __name__, url_prefix="/api/v1/customers", description="Customers")


@blp.route("")
class Customers(MethodView):
    @blp.arguments(CustomerFilter, location="query")
    @blp.response(200, page_of(CustomerSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List customers, newest first"""
        with hub().session_factory() as session:
            query = filtered(select(Customer), args, email=Customer.email)
            return page(session, query, Customer.id, args, Customer.created_at)

    @blp.arguments(CustomerSchema)
    @blp.response(201, CustomerSchema)
    def post(self, data: dict[str, Any]) -> Customer:
        """Create a customer"""
        return customers.create_customer(customers.CreateCustomer(**data), uow())


@blp.route("/<customer_id>")
class CustomerById(MethodView):
    @blp.response(200, CustomerSchema)
    def get(self, customer_id: str) -> Customer:
        """Get a customer"""
        return fetch(Customer, customer_id, "customer")

    @blp.arguments(CustomerUpdateSchema)
    @blp.response(200, CustomerSchema)
    def patch(self, data: dict[str, Any], customer_id: str) -> Customer:
        """Change a customer's details"""
        return customers.update_customer(customers.UpdateCustomer(customer_id, data), uow())
