"""The console's SVG charts: valid XML, one point per scored account where it belongs, colour by
priority and size by ARR, labelled quadrants at the cut-offs, trails, the cap and density
cells for many accounts, the history chart's lines, bands and signals, and user text only
ever escaped."""

import random
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from kizashi.console.charts import (
    PRIORITY_COLOURS,
    Cutoffs,
    MapPoint,
    Signal,
    history_svg,
    map_svg,
    point_radius,
)

SVG = "{http://www.w3.org/2000/svg}"
CUTOFFS = Cutoffs(cs_high=60, op_high=50)


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def _circles(root: ET.Element) -> list[ET.Element]:
    group = root.find(f"{SVG}g[@class='points']")
    assert group is not None
    return group.findall(f"{SVG}a/{SVG}circle")


def _accounts(count: int, seed: int = 1) -> list[MapPoint]:
    rng = random.Random(seed)
    return [
        MapPoint(
            account_id=f"acc-{i:06d}",
            name=f"Company {i}",
            cs=rng.uniform(0, 100),
            op=rng.uniform(0, 100),
            priority=rng.choice(["high", "medium", "low", None]),
            arr=rng.choice([None, rng.uniform(1_000, 2_000_000)]),
        )
        for i in range(count)
    ]


def test_every_scored_account_is_a_point_where_its_scores_put_it() -> None:
    points = [
        MapPoint("a", "Alpha", 0, 0, "high", 1_000_000),
        MapPoint("b", "Beta", 100, 100, "medium", 10_000),
        MapPoint("c", "Gamma", 50, 25, "low", None),
        MapPoint("d", "Unscored", None, None, "low", 5_000),
    ]
    root = _parse(map_svg(points, CUTOFFS, width=600, height=600))
    circles = {c.find(f"{SVG}title").text.split(" —")[0]: c for c in _circles(root)}
    assert set(circles) == {"Alpha", "Beta", "Gamma"}  # no scores, no point
    plot = root.find(f"{SVG}rect[@class='plot']").attrib
    x0, y0 = float(plot["x"]), float(plot["y"])
    x1, y1 = x0 + float(plot["width"]), y0 + float(plot["height"])
    alpha, beta, gamma = circles["Alpha"].attrib, circles["Beta"].attrib, circles["Gamma"].attrib
    assert (float(alpha["cx"]), float(alpha["cy"])) == pytest.approx((x0, y1), abs=0.1)
    assert (float(beta["cx"]), float(beta["cy"])) == pytest.approx((x1, y0), abs=0.1)
    assert float(gamma["cx"]) == pytest.approx((x0 + x1) / 2, abs=0.1)
    assert float(gamma["cy"]) == pytest.approx(y1 - 0.25 * (y1 - y0), abs=0.1)
    # Colour is the priority, size the ARR (square root, clamped).
    assert alpha["fill"] == PRIORITY_COLOURS["high"]
    assert beta["fill"] == PRIORITY_COLOURS["medium"]
    assert gamma["fill"] == PRIORITY_COLOURS["low"]
    assert float(alpha["r"]) > float(beta["r"]) > float(gamma["r"])
    assert point_radius(4_000_000) == point_radius(1_000_000) == 14.0
    assert point_radius(None) == point_radius(0) == 3.0
    assert point_radius(250_000) == pytest.approx(3 + 11 * 0.5)
    # Hover and link.
    assert circles["Beta"].find(f"{SVG}title").text == "Beta — CS 100, OP 100"
    links = root.find(f"{SVG}g[@class='points']").findall(f"{SVG}a")
    assert {a.get("href") for a in links} == {"/accounts/a", "/accounts/b", "/accounts/c"}


def test_the_cutoffs_are_quadrant_lines_with_each_segment_in_its_quadrant() -> None:
    root = _parse(map_svg([MapPoint("a", "A", 10, 10)], CUTOFFS, width=500, height=500))
    plot = root.find(f"{SVG}rect[@class='plot']").attrib
    x0, y0 = float(plot["x"]), float(plot["y"])
    width, height = float(plot["width"]), float(plot["height"])
    cs_line = root.find(f".//{SVG}line[@class='cutoff-cs']").attrib
    op_line = root.find(f".//{SVG}line[@class='cutoff-op']").attrib
    cut_x = float(cs_line["x1"])
    cut_y = float(op_line["y1"])
    assert cut_x == pytest.approx(x0 + 0.6 * width, abs=0.1)
    assert cut_y == pytest.approx(y0 + height - 0.5 * height, abs=0.1)
    labels = {
        t.get("data-segment"): (float(t.get("x")), float(t.get("y")), t.text)
        for t in root.iter(f"{SVG}text")
        if t.get("class") == "segment-label"
    }
    assert set(labels) == {"expand", "recover", "nurture", "at_risk"}
    high_cs = {s for s, (lx, _, _) in labels.items() if lx > cut_x}
    high_op = {s for s, (_, ly, _) in labels.items() if ly < cut_y}
    assert high_cs == {"expand", "nurture"}
    assert high_op == {"expand", "recover"}
    assert labels["at_risk"][2] == "at risk"


def test_trails_run_from_where_each_account_was_to_where_it_is() -> None:
    points = [MapPoint("a", "A", 80, 70, "high"), MapPoint("b", "B", 20, 30, "low")]
    svg = map_svg(points, CUTOFFS, trails={"a": (40.0, 20.0), "gone": (1.0, 1.0)})
    root = _parse(svg)
    lines = root.findall(f".//{SVG}line[@class='trail']")
    assert len(lines) == 1  # b has no point back then; "gone" is not on the map
    circle = next(c for c in _circles(root) if c.find(f"{SVG}title").text.startswith("A "))
    assert (lines[0].get("x2"), lines[0].get("y2")) == (circle.get("cx"), circle.get("cy"))
    assert float(lines[0].get("x1")) < float(lines[0].get("x2"))
    assert float(lines[0].get("y1")) > float(lines[0].get("y2"))  # OP rose: up the chart
    assert "trail" not in map_svg(points, CUTOFFS)


def test_many_accounts_are_capped_by_importance_and_the_rest_binned() -> None:
    accounts = _accounts(50_000)
    root = _parse(map_svg(accounts, CUTOFFS, max_points=2_000, grid=20))
    circles = _circles(root)
    assert len(circles) == 2_000
    # The most important: every high-priority account before any other, by ARR.
    highs = sorted(
        (a for a in accounts if a.priority == "high"),
        key=lambda a: (-(a.arr or 0), a.account_id),
    )[:2_000]
    drawn = {c.find(f"{SVG}title").text.split(" —")[0] for c in circles}
    assert drawn == {a.name for a in highs}
    cells = root.findall(f".//{SVG}g[@class='density']/{SVG}rect")
    assert 0 < len(cells) <= 400
    assert sum(int(c.get("data-count")) for c in cells) == 48_000
    assert "2,000 of 50,000 accounts drawn" in ET.tostring(root, encoding="unicode")
    # Each cell's count is the accounts left out in its 5 × 5 square.
    left_out = [a for a in accounts if a.name not in drawn]
    corner = sum(1 for a in left_out if a.cs < 5 and a.op < 5)
    titles = [c.find(f"{SVG}title").text for c in cells]
    assert f"{corner:,} more accounts: CS 0–5, OP 0–5" in titles


def test_a_hundred_thousand_accounts_render_quickly() -> None:
    accounts = _accounts(100_000, seed=2)
    trails = {a.account_id: (a.cs / 2, a.op / 2) for a in accounts[::3]}
    started = time.perf_counter()
    svg = map_svg(accounts, CUTOFFS, trails=trails)
    elapsed = time.perf_counter() - started
    # Measured, not asserted: performance goals live in the benches.
    print(f"\nmap_svg: 100,000 accounts in {elapsed * 1000:.0f} ms, {len(svg):,} bytes")
    assert len(_circles(_parse(svg))) == 2_000


def test_user_text_appears_only_escaped() -> None:
    nasty = ["<script>alert(1)</script>", "<!channel>", "Quote \" & 'apos'"]
    points = [
        MapPoint(f"id-{i}<x>", name, 50 + i, 40, "high", 1_000) for i, name in enumerate(nasty)
    ]
    svg = map_svg(points, CUTOFFS, trails={"id-0<x>": (10.0, 10.0)})
    history = history_svg(
        [{"at": datetime(2026, 11, 1, tzinfo=UTC), "cs": 50, "op": 40, "segment": "at_risk"}],
        CUTOFFS,
        signals=[Signal(datetime(2026, 11, 1, tzinfo=UTC), name, "churn_risk") for name in nasty],
    )
    for markup in (svg, history):
        assert "<script" not in markup and "<!channel" not in markup
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
        assert "&lt;!channel&gt;" in markup
        root = _parse(markup)  # and still valid XML
        texts = {t.text for t in root.iter(f"{SVG}title")}
        assert any("<script>alert(1)</script>" in (t or "") for t in texts)
    hrefs = {a.get("href") for a in _parse(svg).iter(f"{SVG}a")}
    assert "/accounts/id-0%3Cx%3E" in hrefs


def test_the_history_chart_draws_both_lines_the_bands_and_the_signals() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    points = [
        {"at": start + timedelta(days=d), "cs": 40 + d, "op": 60 - d, "segment": "recover"}
        for d in range(28)
    ]
    signals = [
        Signal(start + timedelta(days=10), "Churn risk: Globex — NPS 2", "churn_risk"),
        {
            "at": (start + timedelta(days=20)).isoformat(),
            "headline": "Ready",
            "kind": "opportunity",
        },
    ]
    root = _parse(
        history_svg(points, CUTOFFS, signals, since=start, until=start + timedelta(days=27))
    )
    cs_line = root.find(f"{SVG}polyline[@class='line-cs']")
    op_line = root.find(f"{SVG}polyline[@class='line-op']")
    cs_xy = [tuple(map(float, pair.split(","))) for pair in cs_line.get("points").split()]
    op_xy = [tuple(map(float, pair.split(","))) for pair in op_line.get("points").split()]
    assert len(cs_xy) == len(op_xy) == 28
    assert [xy[0] for xy in cs_xy] == sorted(xy[0] for xy in cs_xy)
    assert cs_xy[0][1] > cs_xy[-1][1]  # CS rises: up the chart
    assert op_xy[0][1] < op_xy[-1][1]
    plot = root.find(f"{SVG}rect[@class='plot']").attrib
    assert cs_xy[0][0] == pytest.approx(float(plot["x"]))
    assert cs_xy[-1][0] == pytest.approx(float(plot["x"]) + float(plot["width"]))
    bands = {r.get("class") for r in root.iter(f"{SVG}rect")}
    assert {"band band-cs", "band band-op"} <= bands
    cs_cut = float(root.find(f"{SVG}line[@class='cutoff-cs']").get("y1"))
    op_cut = float(root.find(f"{SVG}line[@class='cutoff-op']").get("y1"))
    assert cs_cut < op_cut  # 60 above 50
    marks = root.findall(f".//{SVG}g[@class='signal']")
    assert [m.find(f"{SVG}title").text for m in marks] == ["Churn risk: Globex — NPS 2", "Ready"]
    assert [m.get("data-kind") for m in marks] == ["churn_risk", "opportunity"]
    marker_x = float(marks[0].find(f"{SVG}line").get("x1"))
    assert marker_x == pytest.approx(cs_xy[10][0], abs=0.1)
    hover = root.findall(f".//{SVG}circle[@class='point-cs']")
    assert len(hover) == 28 and "CS 40.0 · OP 60.0 · recover" in hover[0].find(f"{SVG}title").text


def test_an_empty_history_says_so() -> None:
    root = _parse(history_svg([], CUTOFFS))
    assert root.find(f"{SVG}polyline") is None
    assert root.find(f"{SVG}text[@class='empty']").text == "No score history in this period"
