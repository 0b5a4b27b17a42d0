"""expansion_ready: the account enters the expand segment (CS high, OP high)."""

from __future__ import annotations

from kizashi.triggers.rules.base import Context, Reading, _Opportunity, n


class ExpansionReady(_Opportunity):
    READS_SCORES = True

    def condition(self) -> str:
        return "the account enters the expand segment"

    def rearm(self) -> str | None:
        return "the account leaves the expand segment"

    def read(self, ctx: Context) -> Reading:
        s, before = ctx.scores, ctx.before
        if s.segment != "expand":
            return Reading("off", s.op)
        entered = before is not None and before.segment != "expand"
        now_txt = f"CS {n(s.cs, 0)}, OP {n(s.op, 0)}"
        reason = (
            f"Entered expand: {now_txt} (was {before.segment}: CS {n(before.cs, 0)}, "
            f"OP {n(before.op, 0)})"
            if entered and before is not None
            else f"In expand: {now_txt}"
        )
        return Reading("on", s.op, (reason,), entered=entered)

    def headline(self, reading: Reading, ctx: Context) -> str:
        return f"ready to expand (CS {ctx.scores.cs:.0f}, OP {ctx.scores.op:.0f})"


RULE = ExpansionReady
