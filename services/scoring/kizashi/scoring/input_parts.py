"""The index parts fed by support tickets and purchases (issue #21): CS `support_load`, OP
`purchase_growth` and `cross_sell_room`. Pure; no I/O.

Each is left out of its index (normalised to None, weight and line too) while the account has
sent nothing it could stand on, like an observed part (config.CONDITIONAL_PARTS): an account
without a helpdesk or shop connected scores as it did before these inputs existed."""

from kizashi.scoring.config import ScoringConfig

Features = dict[str, float | None]
Part = tuple[float | None, float | None, str]


def _hours(value: float) -> str:
    return f"{value:.0f} h" if value >= 1 else f"{value * 60:.0f} min"


def cs_parts(f: Features, config: ScoringConfig, explain: bool) -> dict[str, Part]:
    """`support_load`: 1 with no load; a heavy load (tickets in 28 days) costs
    `fast_answer_share` of it with fast answers and all of it with slow ones."""
    tickets = f.get("tickets_28d")
    if tickets is None:  # no ticket ever: no helpdesk connected
        return {}
    cfg = config.support
    load = cfg.tickets_28d(tickets)
    median_h = f.get("first_response_median_h")
    slowness = cfg.missing_slowness if median_h is None else cfg.first_response_hours(median_h)
    norm = 1.0 - load * (cfg.fast_answer_share + (1.0 - cfg.fast_answer_share) * slowness)
    if not explain:
        return {"support_load": (tickets, norm, "")}
    open_now = f["open_tickets"] or 0.0
    answer = (
        "no first response measured yet"
        if median_h is None
        else f"median first response {_hours(median_h)}"
    )
    if load >= 0.5 and slowness >= 0.5:
        verdict = "heavy load with slow answers"
    elif load >= 0.5:
        verdict = "heavy load"
    elif load > 0:
        verdict = "some load"
    else:
        verdict = "light load"
    said = (
        f"{tickets:.0f} support ticket{'' if tickets == 1 else 's'} opened in the last 28 days "
        f"({open_now:.0f} open), {answer}: {verdict}"
    )
    return {"support_load": (tickets, norm, said)}


def op_parts(f: Features, config: ScoringConfig, explain: bool) -> dict[str, Part]:
    """`purchase_growth` (spend in 365 days against the 365 before) and `cross_sell_room`
    (the share of the catalogue not owned yet)."""
    spend = f.get("spend_365d")
    if spend is None:  # never bought: no shop connected
        return {}
    cfg = config.purchases
    growth = f.get("spend_growth")
    parts: dict[str, Part] = {}
    if growth is None:
        said = (
            f"Spent {spend:,.0f} {cfg.currency} in the last 365 days, nothing the year before: "
            "growth counted as neutral"
            if explain
            else ""
        )
        parts["purchase_growth"] = (None, cfg.missing_growth, said)
    else:
        said = (
            f"Spent {spend:,.0f} {cfg.currency} in the last 365 days, "
            f"{growth * 100:.0f}% of the year before ({f['orders_365d'] or 0:.0f} orders)"
            if explain
            else ""
        )
        parts["purchase_growth"] = (growth, cfg.growth(growth), said)
    room, owned = f.get("cross_sell_room"), f.get("products_owned") or 0.0
    if room is not None and cfg.catalogue:
        size = len(cfg.catalogue)
        said = (
            f"Owns {owned:.0f} product{'' if owned == 1 else 's'}; {room:.0f} of the "
            f"{size} in the catalogue not bought yet"
            if explain
            else ""
        )
        parts["cross_sell_room"] = (room, room / size, said)
    return parts
