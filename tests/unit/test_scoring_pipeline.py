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


def test_the_segment_published_is_the_one_held_until_the_dwell_is_waited_out() -> None:
    """Issue #20: the segment in `scores.changed` and the row is the one held; the candidate
    and its start go with the row (so a restart or another replica carries on), and the row's
    next_check_at brings the sweep back when the dwell is over, with no event."""
    history = [event("account_update", START - timedelta(days=60), seats=5)]
    history += [usage(START - timedelta(days=d, hours=h)) for d in range(28) for h in (9, 15)]
    first = rescore(StoredAccount("acme", None, None), history, config=CONFIG, now=START)
    assert first.scored.held_segment == first.scored.segment != "insufficient_data"
    # The CS cut-off moved 20 points to the other side of this CS: the scores now point to
    # the segment across it.
    held, cs_now = first.scored.segment, first.scored.cs
    cs_was_high = held in ("expand", "nurture")
    moved = CONFIG.model_copy(
        update={
            "segments": CONFIG.segments.model_copy(
                update={"cs_high": cs_now + 20 if cs_was_high else cs_now - 20}
            )
        }
    )
    assert moved.segments.min_dwell == timedelta(days=2)
    across = {"at_risk": "nurture", "recover": "expand", "nurture": "at_risk", "expand": "recover"}
    stored = StoredAccount.after(first.scored)
    waiting = rescore(stored, [], config=moved, now=START + timedelta(hours=1), cause="sweep")
    assert waiting.scored.segment == held  # still held
    assert (waiting.scored.segment_candidate, waiting.scored.segment_candidate_since) == (
        across[held],
        START + timedelta(hours=1),
    )
    assert waiting.scored.next_check_at <= START + timedelta(days=2, hours=1)
    if waiting.change is not None:
        assert waiting.change.after.segment == held
    # A day later, still waiting (the stored candidate kept its start).
    stored = StoredAccount.after(waiting.scored)
    later = rescore(stored, [], config=moved, now=START + timedelta(days=1), cause="sweep")
    assert later.scored.segment == held
    assert later.scored.segment_candidate_since == START + timedelta(hours=1)
    # The dwell waited out: the new segment is held, and published as a change of segment.
    stored = StoredAccount.after(later.scored)
    done = rescore(stored, [], config=moved, now=START + timedelta(days=2, hours=1))
    assert done.scored.segment == done.scored.held_segment == across[held]
    assert done.scored.segment_candidate is None
    assert done.change is not None
    assert (done.change.before.segment, done.change.after.segment) == (held, across[held])
