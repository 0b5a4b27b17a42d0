"""Segments that do not flap (issue #20): margins and a minimum dwell around the cut-offs
(kizashi.scoring.segments), as properties over any sequence of scores and times."""

from datetime import UTC, datetime, timedelta
from importlib.resources import files

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kizashi.scoring.config import ConfigError, load_scoring_config, parse_scoring_config
from kizashi.scoring.segments import SegmentHold, segment_of

DEFAULT_YAML = (
    files("kizashi.scoring").joinpath("defaults/scoring.yaml").read_text(encoding="utf-8")
)

BASE = load_scoring_config(None)
CONFIG = BASE.model_copy(
    update={
        "segments": BASE.segments.model_copy(
            update={"enter_margin": 3.0, "exit_margin": 4.0, "min_dwell": timedelta(days=2)}
        )
    }
)
CS, OP = CONFIG.segments.cs_high, CONFIG.segments.op_high  # 60, 50
T0 = datetime(2026, 11, 1, tzinfo=UTC)
SEGMENTS = ("expand", "nurture", "recover", "at_risk")


def _inside(cut: float) -> st.SearchStrategy[float]:
    """A score inside the band around `cut` where no side changes: [cut − exit, cut + enter)."""
    low, high = cut - CONFIG.segments.exit_margin, cut + CONFIG.segments.enter_margin
    return st.floats(low, high, exclude_max=True, allow_nan=False)


gaps = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=5))


@settings(max_examples=300)
@given(
    start=st.sampled_from(SEGMENTS),
    scores=st.lists(st.tuples(_inside(CS), _inside(OP), gaps), min_size=1, max_size=40),
)
def test_a_score_oscillating_inside_the_margins_never_changes_segment(start, scores) -> None:
    hold = SegmentHold(start)
    now = T0
    for cs, op, gap in scores:
        now += gap
        assert hold.step(cs, op, now, CONFIG) == start
        assert hold.candidate is None  # nothing even starts to wait
    assert hold.held == start


@settings(max_examples=300)
@given(
    cs=st.lists(st.floats(CS + 3, 100), min_size=2, max_size=30),
    gaps=st.lists(st.timedeltas(timedelta(minutes=1), timedelta(hours=20)), min_size=30),
)
def test_a_clear_crossing_held_past_the_dwell_changes_segment_then(cs, gaps) -> None:
    """From at_risk, CS at cut-off + enter_margin or more at every score: the segment stays
    at_risk until 2 days after the first such score, and is nurture from the first score at
    or after that."""
    hold = SegmentHold("at_risk")
    first = now = T0
    for i, value in enumerate(cs):
        now = T0 if i == 0 else now + gaps[i]
        held = hold.step(value, 10.0, now, CONFIG)
        assert held == ("nurture" if now - first >= timedelta(days=2) else "at_risk")
    if now - first >= timedelta(days=2):
        assert (hold.held, hold.candidate, hold.since) == ("nurture", None, None)
    else:
        assert (hold.candidate, hold.since) == ("nurture", first)
        assert hold.due_at(CONFIG) == first + timedelta(days=2)


def test_a_score_pointing_back_starts_the_wait_over() -> None:
    hold = SegmentHold("at_risk")
    assert hold.step(70, 10, T0, CONFIG) == "at_risk"
    assert hold.step(59, 10, T0 + timedelta(days=1), CONFIG) == "at_risk"  # back: wait over
    assert hold.candidate is None
    assert hold.step(70, 10, T0 + timedelta(days=2), CONFIG) == "at_risk"  # since day 2 now
    assert hold.step(70, 10, T0 + timedelta(days=3, hours=23), CONFIG) == "at_risk"
    assert hold.step(70, 10, T0 + timedelta(days=4), CONFIG) == "nurture"


def test_leaving_needs_crossing_back_by_the_exit_margin() -> None:
    hold = SegmentHold("expand")
    assert hold.step(56.01, 46.0, T0, CONFIG) == "expand"  # within 4 points of both cut-offs
    assert hold.candidate is None
    assert hold.step(55.99, 46.0, T0, CONFIG) == "expand"  # CS out, OP still in: recover
    assert (hold.candidate, hold.since) == ("recover", T0)
    # OP out too two days later: a new candidate (at_risk), whose wait starts now.
    assert hold.step(55.0, 45.0, T0 + timedelta(days=2), CONFIG) == "expand"
    assert (hold.candidate, hold.since) == ("at_risk", T0 + timedelta(days=2))
    assert hold.step(55.0, 45.0, T0 + timedelta(days=4), CONFIG) == "at_risk"


def test_the_first_score_takes_the_plain_cut_offs_and_no_margin() -> None:
    hold = SegmentHold()
    assert hold.step(60.0, 50.0, T0, CONFIG) == "expand"
    assert hold.held == "expand"
    assert SegmentHold.stored(None).held is None


def test_zero_margins_and_no_dwell_are_the_plain_cut_offs() -> None:
    hold = SegmentHold("at_risk")
    for cs, op in ((60, 50), (59.99, 50), (59.99, 49.99), (100, 0)):
        assert hold.step(cs, op, T0, BASE.model_copy(update={"segments": _plain()})) == (
            segment_of(cs, op, BASE)
        )


def _plain():
    return BASE.segments.model_copy(
        update={"enter_margin": 0.0, "exit_margin": 0.0, "min_dwell": timedelta(0)}
    )


def test_a_row_from_before_holds_its_published_segment() -> None:
    assert SegmentHold.stored({"segment": "nurture"}).held == "nurture"
    assert SegmentHold.stored({"segment": "insufficient_data"}).held is None
    stored = SegmentHold.stored(
        {
            "segment": "insufficient_data",
            "held_segment": "recover",
            "segment_candidate": "expand",
            "segment_candidate_since": T0,
        }
    )
    assert (stored.held, stored.candidate, stored.since) == ("recover", "expand", T0)


@pytest.mark.parametrize("value", ["'2 days'", "'-1d'", "2", "'1.5d'"])
def test_min_dwell_must_be_a_duration(value) -> None:
    text = DEFAULT_YAML.replace("min_dwell: 2d", f"min_dwell: {value}")
    assert text != DEFAULT_YAML
    with pytest.raises(ConfigError, match="segments.min_dwell"):
        parse_scoring_config(text)


def test_the_packaged_default_has_margins_and_a_dwell() -> None:
    assert (BASE.segments.enter_margin, BASE.segments.exit_margin) == (3, 3)
    assert BASE.segments.min_dwell == timedelta(days=2)
    # A scoring.yaml from before them loads, without hysteresis.
    old = "\n".join(
        line
        for line in DEFAULT_YAML.splitlines()
        if not line.startswith(("  enter_", "  exit_", "  min_dwell"))
    )
    assert parse_scoring_config(old).segments.min_dwell == timedelta(0)
