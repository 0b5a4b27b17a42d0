"""What a re-score publishes: moves smaller than `changes.min_points` add up from the scores
last published, so a slow slide reaches the triggers instead of never being published."""

from datetime import timedelta

from kizashi.scoring.pipeline import rescore
from kizashi.scoring.repository import StoredAccount
from tests.unit.scoring_events import CONFIG, NOW, event

START = NOW - timedelta(days=14)


def usage(at):
    return event("product_usage", at, action="feature_used", user_id="u1", feature="f1")


def test_a_slow_slide_is_published_once_it_adds_up_to_min_points() -> None:
    threshold = CONFIG.changes.min_points
    history = [event("account_update", START - timedelta(days=60), seats=5)]
    history += [
        usage(START - timedelta(days=d, hours=h)) for d in range(28) for h in range(0, 24, 2)
    ]
    first = rescore(StoredAccount("acme", None, None), history, config=CONFIG, now=START)
    assert first.change is not None  # a first score is always published
    published = [first.change]
    stored, previous_cs, largest_step = StoredAccount.after(first.scored), first.scored.cs, 0.0
    # Two weeks of thinning use: one event every 6 hours after one every 2.
    for hour in range(6, 14 * 24, 6):
        at = START + timedelta(hours=hour)
        outcome = rescore(stored, [usage(at)], config=CONFIG, now=at)
        largest_step = max(largest_step, abs(outcome.scored.cs - previous_cs))
        previous_cs = outcome.scored.cs
        if outcome.change is not None:
            published.append(outcome.change)
        stored = StoredAccount.after(outcome.scored)

    # No single re-score moved CS by the threshold, yet CS slid by several times it.
    assert largest_step < threshold
    assert published[0].after.cs - previous_cs >= 4 * threshold
    # Each change starts where the one before it ended, and the slide is published in steps
    # of at least the threshold (the others are watched features moving, CS unchanged).
    for earlier, later in zip(published, published[1:], strict=False):
        assert later.before == earlier.after
    drops = [c.before.cs - c.after.cs for c in published[1:] if c.after.cs != c.before.cs]
    assert len(drops) >= 4 and all(drop >= threshold for drop in drops)
    # What is left unpublished at the end is less than the threshold.
    assert abs(published[-1].after.cs - previous_cs) < threshold
