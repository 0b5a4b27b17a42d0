"""The fiscal year end's calendar, shared by scoring (the feature `days_to_fiscal_year_end`)
and triggers (moving it to the sweep's `now`, and the rule `fiscal_year_end`'s edges)."""

from datetime import UTC, date, datetime, timedelta


def month_end(year: int, month: int) -> date:
    """The last day of `month` (1-12) of `year`."""
    return date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)


def next_fiscal_year_end(month: int, today: date) -> date:
    """The next last day of the fiscal year ending in `month`: this year's if not past."""
    end = month_end(today.year, month)
    return end if end >= today else month_end(today.year + 1, month)


def days_to_fiscal_year_end(month: float | None, now: datetime) -> float | None:
    """Whole days from `now`'s UTC date to the next fiscal year end (0 on the day itself)."""
    if month is None:
        return None
    today = now.astimezone(UTC).date()
    return float((next_fiscal_year_end(int(month), today) - today).days)
