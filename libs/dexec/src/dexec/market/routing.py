"""Route choice: the route that leaves the trader the most output after all fees.

Candidates, on the pools of the venues that answered:
- a pair with pools of its own: each pool alone, and the best split across pools and venues
  (greedy on a grid of `100/split_step_percent` chunks, see `dexec.market.allocation`);
- a pair without: two hops through each hub (SOL, USDC) that connects the tokens, each hop
  allocated the same way.
Pool fees are in every quoted output; network fees (signatures, priority fee for the route's
compute units, wrapping and unwrapping SOL) are valued in the output token at the market price
and subtracted, so a split or a second hop is chosen only when it pays for its extra cost. The
`routed` event records every candidate, the chosen one and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

from dexec.market.allocation import Allocation, Part, hop_options
from dexec.market.fees import (
    PRIORITY_FEE_REFERENCE_CU,
    SWAP_CU,
    compute_unit_limit,
    lamports_in_token,
    network_fee_lamports,
)
from dexec.market.market import MarketView
from dexec.market.pool_model import PoolState
from dexec.market.pools import BPS, ceil_div, price_impact_pct
from dexec.market.tokens import Token, format_units
from dexec.orders.events import Route, RouteCandidate, RouteLeg, VenueQuote

__all__ = ["NoRoute", "find_route", "min_out", "network_fee_lamports"]


class NoRoute(LookupError):
    """No candidate fills the order; `args[1]` says, per venue, what was wrong."""


def min_out(out_amount: int, slippage_bps: int) -> int:
    """The least output the trader accepts, rounded down (Jupiter's otherAmountThreshold)."""
    return out_amount * (BPS - slippage_bps) // BPS


@dataclass(frozen=True)
class _Candidate:
    hops: tuple[Allocation, ...]
    tokens: tuple[Token, ...]  # token_in, [hub,] token_out
    compute_units: int
    fee_lamports: int
    fee_in_output: int

    @property
    def out_amount(self) -> int:
        return self.hops[-1].amount_out

    @cached_property
    def net(self) -> int:
        return self.out_amount - self.fee_in_output

    @property
    def legs(self) -> int:
        return sum(len(hop.parts) for hop in self.hops)

    def price_impact_pct(self) -> Decimal:
        return price_impact_pct(
            (hop.amount_out, [p.result for p in hop.parts]) for hop in self.hops
        )

    def description(self) -> str:
        described = [_describe_hop(hop) for hop in self.hops]
        if len(described) == 1:
            return described[0]
        path = "→".join(t.symbol for t in self.tokens)
        return f"{path}: " + ", then ".join(described)

    def plan(self) -> list[RouteLeg]:
        legs = []
        for hop, (token_in, token_out) in zip(self.hops, self._hop_tokens(), strict=True):
            for part in hop.parts:
                fields = _pool_swap_fields(part, token_in, token_out)
                legs.append(RouteLeg(**fields, fee_mint=token_in.mint, percent=part.percent))
        return legs

    def _hop_tokens(self) -> list[tuple[Token, Token]]:
        return list(zip(self.tokens, self.tokens[1:], strict=False))

    def record(self, chosen: bool) -> RouteCandidate:
        return RouteCandidate(
            description=self.description(),
            route_plan=self.plan(),
            out_amount=self.out_amount,
            price_impact_pct=self.price_impact_pct(),
            compute_unit_limit=self.compute_units,
            network_fee_lamports=self.fee_lamports,
            network_fee_in_output=self.fee_in_output,
            net_out_amount=self.net,
            chosen=chosen,
        )


def _describe_hop(hop: Allocation) -> str:
    if len(hop.parts) == 1:
        return hop.parts[0].state.pool.name
    return "split " + " + ".join(f"{p.percent}% {p.state.pool.name}" for p in hop.parts)


class _Pricer:
    """Network fees in lamports and in any token, at the view's market prices."""

    def __init__(self, view: MarketView, priority_fee_lamports: int) -> None:
        self._view = view
        self._priority = priority_fee_lamports

    def in_token(self, lamports: int, token: Token) -> int:
        return lamports_in_token(lamports, self._view.units_per_lamport(token))

    def leg_costs(self, hop_pools: list[PoolState], token_out: Token) -> dict[str, int]:
        """What one more leg in each pool adds to the priority fee, in the hop's output."""
        return {
            state.pool.address: self.in_token(
                ceil_div(self._priority * SWAP_CU[state.pool.kind], PRIORITY_FEE_REFERENCE_CU),
                token_out,
            )
            for state in hop_pools
        }

    def candidate(self, hops: tuple[Allocation, ...], tokens: tuple[Token, ...]) -> _Candidate:
        kinds = [p.state.pool.kind for hop in hops for p in hop.parts]
        units = compute_unit_limit(kinds, tokens[0].mint, tokens[-1].mint)
        fee = network_fee_lamports(self._priority, compute_units=units)
        return _Candidate(hops, tokens, units, fee, self.in_token(fee, tokens[-1]))


class _Search:
    """The candidates for one order, and every pool's quote met on the way."""

    def __init__(self, view: MarketView, pricer: _Pricer, chunks: int) -> None:
        self.view = view
        self.pricer = pricer
        self.chunks = chunks
        self.quotes: list[VenueQuote] = []

    def hop(
        self, token_in: Token, token_out: Token, amount: int
    ) -> tuple[list[Allocation], dict[str, int]]:
        """Each pool alone and the best split for one hop, and the legs' costs."""
        pools = self.view.pools_between(token_in, token_out)
        costs = self.pricer.leg_costs(pools, token_out)
        options = hop_options(pools, token_in, amount, costs, self.chunks)
        self.quotes += _quotes(options, token_in, token_out, self.view.slot)
        return options, costs

    def direct(self, token_in: Token, token_out: Token, amount: int) -> list[_Candidate]:
        options, _ = self.hop(token_in, token_out, amount)
        return [self.pricer.candidate((o,), (token_in, token_out)) for o in options]

    def through_hubs(self, token_in: Token, token_out: Token, amount: int) -> list[_Candidate]:
        """Two hops through each hub with pools on both sides, each hop at its best."""
        candidates = []
        for hub in self.view.market.hubs:
            if hub in (token_in, token_out):
                continue
            if not self.view.pools_between(hub, token_out):
                continue
            first = self._best(*self.hop(token_in, hub, amount))
            if first is None:
                continue
            second = self._best(*self.hop(hub, token_out, first.amount_out))
            if second is not None:
                tokens = (token_in, hub, token_out)
                candidates.append(self.pricer.candidate((first, second), tokens))
        return candidates

    @staticmethod
    def _best(options: list[Allocation], costs: dict[str, int]) -> Allocation | None:
        return max(options, key=lambda o: o.net_of(costs), default=None)


def find_route(
    view: MarketView,
    token_in: Token,
    token_out: Token,
    amount_in: int,
    slippage_bps: int,
    *,
    priority_fee_lamports: int,
    failed_venues: dict[str, str] | None = None,
    split_step_percent: int = 5,
) -> Route:
    """The best route for selling `amount_in` of `token_in`, with every candidate and why."""
    failed = dict(failed_venues or {})
    search = _Search(view, _Pricer(view, priority_fee_lamports), 100 // split_step_percent)
    # Multi-hop only for pairs without pools of their own (in the market, not just in the
    # venues that answered: a venue that failed is retried rather than routed around).
    if view.market.pools_between(token_in, token_out):
        candidates = search.direct(token_in, token_out, amount_in)
    else:
        candidates = search.through_hubs(token_in, token_out, amount_in)
    candidates = [c for c in candidates if c.out_amount > 0]
    if not candidates:
        raise NoRoute(f"no route fills {token_in.symbol} → {token_out.symbol}", failed)
    # Most left after fees; on a tie, the simpler transaction.
    chosen = max(candidates, key=lambda c: (c.net, -c.legs, -c.compute_units))
    return Route(
        input_mint=token_in.mint,
        output_mint=token_out.mint,
        in_amount=amount_in,
        out_amount=chosen.out_amount,
        other_amount_threshold=min_out(chosen.out_amount, slippage_bps),
        slippage_bps=slippage_bps,
        price_impact_pct=chosen.price_impact_pct(),
        route_plan=chosen.plan(),
        context_slot=view.slot,
        network_fee_lamports=chosen.fee_lamports,
        compute_unit_limit=chosen.compute_units,
        quotes=search.quotes,
        failed_venues=failed,
        candidates=[c.record(c is chosen) for c in candidates],
        reason=_reason(chosen, candidates, failed),
    )


def _quotes(
    options: list[Allocation], token_in: Token, token_out: Token, slot: int
) -> list[VenueQuote]:
    """Each single-pool option as that pool's quote for the hop."""
    quotes = []
    for option in options:
        if len(option.parts) != 1:
            continue
        part = option.parts[0]
        fields = _pool_swap_fields(part, token_in, token_out)
        quotes.append(
            VenueQuote(**fields, price_impact_pct=part.result.price_impact_pct, context_slot=slot)
        )
    return quotes


def _pool_swap_fields(part: Part, token_in: Token, token_out: Token) -> dict[str, Any]:
    """What a route leg and a venue quote both say about one pool's swap."""
    result, pool = part.result, part.state.pool
    return {
        "venue": pool.venue,
        "pool": pool.address,
        "label": pool.kind.label,
        "input_mint": token_in.mint,
        "output_mint": token_out.mint,
        "in_amount": result.amount_in,
        "out_amount": result.amount_out,
        "fee_amount": result.fee,
    }


def _reason(chosen: _Candidate, candidates: list[_Candidate], failed: dict[str, str]) -> str:
    token_in, token_out = chosen.tokens[0], chosen.tokens[-1]

    def amount(units: int) -> str:
        return f"{format_units(token_out, units)} {token_out.symbol}"

    reason = (
        f"{chosen.description()} gives {amount(chosen.out_amount)}, "
        f"{amount(chosen.net)} after the {amount(chosen.fee_in_output)} network fee"
    )
    others = sorted((c for c in candidates if c is not chosen), key=lambda c: -c.net)
    if others:
        runner_up = others[0]
        if runner_up.net > 0:
            gain = (chosen.net - runner_up.net) * BPS // runner_up.net
            reason += f"; {gain} bps more than {runner_up.description()}"
        else:
            reason += f"; {runner_up.description()} leaves nothing after fees"
    if len(chosen.tokens) == 3:
        hub = chosen.tokens[1]
        reason += f"; no {token_in.symbol}/{token_out.symbol} pool, so through {hub.symbol}"
    for venue, error in sorted(failed.items()):
        reason += f"; {venue} unavailable ({error})"
    return reason
