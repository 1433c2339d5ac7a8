"""Mapping between `OrderView` (the fold of an order's events) and `orders` rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from decimal import Decimal
from typing import Any

from dexec.orders.projection import OrderView
from dexec.orders.states import OrderStatus

_VIEW_FIELDS = tuple(f.name for f in fields(OrderView) if f.name not in ("order_id", "status"))


def view_from_row(row: Mapping[str, Any]) -> OrderView:
    """The view of an `orders` row, given as a column → value mapping (`Row._mapping`)."""
    view = OrderView(row["id"], OrderStatus(row["status"]))
    for name in _VIEW_FIELDS:
        setattr(view, name, row[name])
    return view


def row_values(view: OrderView) -> dict[str, Any]:
    """Column values for the row of `view`, including the columns copied out of the spec."""
    values: dict[str, Any] = {name: getattr(view, name) for name in _VIEW_FIELDS}
    values["id"] = view.order_id
    values["status"] = str(view.status)
    spec = view.spec or {}
    values["tenant"] = spec.get("tenant")
    values["token_in"] = spec.get("tokenIn")
    values["token_out"] = spec.get("tokenOut")
    values["amount_in"] = Decimal(spec["amountIn"]) if "amountIn" in spec else None
    values["slippage_bps"] = spec.get("slippageBps")
    return values
