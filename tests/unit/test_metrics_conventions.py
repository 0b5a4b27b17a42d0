"""Every metric the code defines follows Prometheus naming (architecture §9) and passes
`promtool check metrics`, with every labelled series present."""

import re

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from tests.support.prometheus import kizashi_metrics, promtool

# What a gauge or histogram may measure: a base unit, or a count of named things.
UNIT_SUFFIXES = (
    "_seconds",
    "_timestamp_seconds",
    "_bytes",
    "_records",
    "_connections",
    "_accounts",
    "_signals",
    "_ratio",
)
FORBIDDEN_LABELS = {"account_id", "account", "user_id", "event_id", "signal_id", "delivery_id"}
# A rep's address or handle: personal data, and one series per rep (the daily budget's
# counters are labelled by receiver only).
FORBIDDEN_LABELS |= {"owner", "owner_email", "owner_slack", "rep"}
# Prometheus attaches these to every scraped series; a metric's own label of the same name
# is renamed `exported_<name>` on scrape, and queries on it find nothing.
TARGET_LABELS = {"job", "instance"}


def _wrappers() -> list[MetricWrapperBase]:
    from prometheus_client import REGISTRY

    kizashi_metrics()  # imports every metrics module
    return [
        c
        for c in REGISTRY._collector_to_names  # noqa: SLF001
        if isinstance(c, MetricWrapperBase) and c._name.startswith("kizashi_")  # noqa: SLF001
    ]


def test_names_have_the_prefix_units_and_total():
    metrics = kizashi_metrics()
    assert len(metrics) >= 25
    for name, metric in metrics.items():
        assert re.fullmatch(r"kizashi_[a-z0-9_]+", name), name
        if metric.type == "counter":
            # prometheus_client keeps `_total` off the base name and puts it on the series.
            assert [s.name for s in metric.samples if not s.name.endswith("_created")] in (
                [],
                [f"{name}_total"] * len([s for s in metric.samples if s.name.endswith("_total")]),
            ), name
        else:
            assert name.endswith(UNIT_SUFFIXES), f"{name}: a {metric.type} needs a unit suffix"
            assert not name.endswith("_total"), name


def test_no_metric_is_labelled_by_an_id():
    for wrapper in _wrappers():
        labels = set(wrapper._labelnames)  # noqa: SLF001
        assert not labels & FORBIDDEN_LABELS, f"{wrapper._name} has {labels & FORBIDDEN_LABELS}"  # noqa: SLF001


def test_no_metric_label_collides_with_a_target_label():
    for wrapper in _wrappers():
        labels = set(wrapper._labelnames)  # noqa: SLF001
        assert not labels & TARGET_LABELS, f"{wrapper._name} has {labels & TARGET_LABELS}"  # noqa: SLF001


def test_every_series_passes_promtool_check_metrics():
    """Copy each metric into a fresh registry with one child per metric, so that promtool sees
    real samples (a labelled metric without children prints only HELP and TYPE)."""
    registry = CollectorRegistry()
    for wrapper in _wrappers():
        clone = type(wrapper)(
            wrapper._name,  # noqa: SLF001
            wrapper._documentation,  # noqa: SLF001
            wrapper._labelnames,  # noqa: SLF001
            registry=registry,
            **(
                {"buckets": wrapper._upper_bounds}  # noqa: SLF001
                if wrapper._type == "histogram"  # noqa: SLF001
                else {}
            ),
        )
        child = clone.labels(*("x" for _ in wrapper._labelnames)) if wrapper._labelnames else clone  # noqa: SLF001
        if wrapper._type == "gauge":  # noqa: SLF001
            child.set(1)
        elif wrapper._type == "counter":  # noqa: SLF001
            child.inc()
        else:
            child.observe(0.2)
    text = generate_latest(registry).decode()
    typed = re.findall(r"^# TYPE (kizashi_\S+?)(?<!_created) ", text, re.MULTILINE)
    assert len(typed) == len(_wrappers()), typed
    promtool("check", "metrics", stdin=text)
