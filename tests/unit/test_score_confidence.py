"""The scores' confidence (kizashi.scoring.confidence): it rises with evidence (CRM facts,
survey answers, days of usage history), falls as the evidence ages, says what would raise it,
and below min_confidence the segment is insufficient_data. Order of the events does not
matter. And the demo's accounts, with their usage scored before their CRM facts (as
separate topics may deliver them), get no score-based alarm from evidence arriving."""

import random
from datetime import UTC, datetime, timedelta

from kizashi.contracts.events import input_event_adapter
from kizashi.scoring.config import load_scoring_config
from kizashi.scoring.features import features_at
from kizashi.scoring.indices import score
from kizashi.tools.demo import story_events
from kizashi.tools.replay import Replay
from kizashi.triggers.rules import load_rules_config
from tests.unit.scoring_events import CONFIG, NOW, event, state_of
from tests.unit.test_scoring_model import crm, heavy_use

FACTS = {
    "seats": 12,
    "arr": 80_000.0,
    "employees": 300,
    "plan": "starter",
    "renewal_date": "2027-02-28",
    "decision_makers": ["u1"],
}


def scored_at(events, now=NOW):
    state = state_of(*events)
    facts = state.facts("acme")
    return score(features_at(state, facts, now), facts, CONFIG, now)


def confidence_lines(result) -> dict[str, dict]:
    return {line["index"]: line for line in result.lines if line["component"] == "confidence"}


def survey(days_ago: float, **answers):
    return event("survey_response", NOW - timedelta(days=days_ago), survey_id="pulse", **answers)


def test_evidence_raises_the_confidence_and_the_breakdown_says_what_would() -> None:
    thin = scored_at([crm(name="Acme")])
    assert thin.snapshot.confidence < CONFIG.confidence.min_confidence
    assert thin.snapshot.segment == "insufficient_data"
    lines = confidence_lines(thin)
    assert lines["cs"]["weight"] == lines["cs"]["points"] == 0
    assert lines["cs"]["raw"] == thin.snapshot.confidence or lines["op"]["raw"] == (
        thin.snapshot.confidence
    )
    said = lines["cs"]["explanation"]
    assert said.startswith("Confidence 0.00, below 0.50") and "an NPS answer" in said
    assert "more usage history (0 of 28 days)" in said
    assert "the seats bought" in lines["op"]["explanation"]

    week = scored_at([crm(**FACTS), *heavy_use(7)])
    full = scored_at(
        [crm(**FACTS), *heavy_use(28), survey(1, nps=9, csat=5, upsell_intent=8, referral_intent=9)]
    )
    assert thin.snapshot.confidence < week.snapshot.confidence < full.snapshot.confidence
    assert full.snapshot.confidence > 0.95 and full.snapshot.segment != "insufficient_data"
    assert (
        "more usage history (8 of 28 days)"
    )  # 8 UTC days in confidence_lines(week)["cs"]["explanation"]
    assert confidence_lines(full)["cs"]["explanation"].endswith("nothing missing")


def test_the_confidence_falls_as_evidence_ages() -> None:
    base = [crm(**FACTS), *heavy_use(28)]
    values = []
    for age in (1, 30, 180, 360, 720):
        result = scored_at([*base, survey(age, nps=9, csat=5, upsell_intent=8, referral_intent=9)])
        values.append(result.snapshot.confidence)
    assert values == sorted(values, reverse=True) and len(set(values)) == len(values)
    old = scored_at([*base, survey(360, nps=9, csat=5, upsell_intent=8, referral_intent=9)])
    assert (
        "a newer NPS answer (the latest is 360 days old)"
        in (confidence_lines(old)["cs"]["explanation"])
    )
    # The same evidence read later: older, so less confidence.
    evidence = [*base, survey(1, nps=9, upsell_intent=8)]
    later = scored_at(evidence, NOW + timedelta(days=200))
    assert later.snapshot.confidence < scored_at(evidence).snapshot.confidence


def test_the_confidence_does_not_depend_on_the_order_of_the_events() -> None:
    events = [crm(**FACTS), *heavy_use(10), survey(3, nps=7)]
    expected = scored_at(events)
    shuffled = list(events)
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert scored_at(shuffled).snapshot == expected.snapshot
        assert confidence_lines(scored_at(shuffled)) == confidence_lines(expected)


def _demo(order: str) -> list:
    """The demo's history and news, replayed with `received_at` in batches: usage first and
    then the CRM facts ('topics', what a consumer of separate topics may see), or the history
    in chunks of 500 events, oldest first (as `kizashi demo` posts it)."""
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    history, news = story_events(now)
    if order == "topics":
        usage = [e for e in history if e["type"] == "product_usage"]
        rest = [e for e in history if e["type"] != "product_usage"]
        batches = [usage, rest]
    else:
        batches = [history[i : i + 500] for i in range(0, len(history), 500)]
    events = []
    for number, batch in enumerate([*batches, news]):
        at = (now + timedelta(seconds=number)).isoformat()
        events.extend({**e, "received_at": at} for e in batch)
    return [input_event_adapter.validate_python(e) for e in events]


def test_the_demo_tells_the_truth() -> None:
    for order in ("topics", "chunks"):
        replay = Replay(scoring=load_scoring_config(None), rules=load_rules_config(None))
        fired = {(s.account_id, s.rule) for s in replay.run(_demo(order)).signals}
        assert ("acme", "health_drop") not in fired, order
        assert not {rule for account, rule in fired if account == "acme"} & {
            "health_drop",
            "renewal_at_risk",
        }, order
        assert ("globex", "detractor") in fired, order
        if order == "topics":  # (in chunks, rules on raw usage fill acme's daily cap first)
            assert ("acme", "upsell_intent") in fired
