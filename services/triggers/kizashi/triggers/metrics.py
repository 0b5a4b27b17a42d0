from prometheus_client import Counter, Gauge

SIGNALS_FIRED = Counter(
    "kizashi_triggers_signals_fired_total", "Signals fired, by kind and rule", ["kind", "rule"]
)
SIGNALS_SUPPRESSED = Counter(
    "kizashi_triggers_signals_suppressed_total",
    "Signals held back by the per-account daily cap, by kind and rule",
    ["kind", "rule"],
)
SIGNALS_RESOLVED = Counter(
    "kizashi_triggers_signals_auto_resolved_total",
    "Churn-risk signals resolved because their condition cleared",
)
SIGNALS_RETRACTED = Counter(
    "kizashi_triggers_signals_retracted_total",
    "Sent signals retracted because late events showed their condition did not hold, by rule",
    ["rule"],
)
SIGNAL_ACTIONS = Counter(
    "kizashi_triggers_signal_actions_total", "Lifecycle actions on signals", ["action"]
)
SWEPT_ACCOUNTS = Counter(
    "kizashi_triggers_swept_accounts_total",
    "Accounts the periodic sweep evaluated (only those due: time can change a rule for them)",
)
FEEDBACK_GIVEN = Counter(
    "kizashi_triggers_feedback_total",
    "Feedback answers recorded on signals, by channel and answer",
    ["channel", "useful"],
)

# Each rule's record over GAUGE_PERIOD (kizashi.triggers.performance), refreshed every minute
# from the signals table: every replica reports the same figures (read them with max by rule).
RULE_FIRED = Gauge(
    "kizashi_rule_fired_signals", "Signals the rule fired in the last 90 days", ["rule"]
)
RULE_FEEDBACK = Gauge(
    "kizashi_rule_feedback_signals",
    "Signals of the last 90 days whose current feedback is useful (true) or not (false)",
    ["rule", "useful"],
)
RULE_OUTCOMES = Gauge(
    "kizashi_rule_outcome_signals",
    "Signals of the last 90 days by what followed within the outcome window: won "
    "(opportunity, an expansion), confirmed (churn risk, churn or a contraction), averted "
    "(churn risk, a renewal)",
    ["rule", "result"],
)
RULE_PRECISION = Gauge(
    "kizashi_rule_precision_ratio",
    "useful / (useful + not useful) over the last 90 days; absent with no feedback",
    ["rule"],
)
RULE_PRECISION_LOWER = Gauge(
    "kizashi_rule_precision_lower_ratio",
    "Lower bound of the 95 % Wilson interval of the rule's precision",
    ["rule"],
)
RULE_PRECISION_UPPER = Gauge(
    "kizashi_rule_precision_upper_ratio",
    "Upper bound of the 95 % Wilson interval of the rule's precision",
    ["rule"],
)
RULE_FIRST_ACTION = Gauge(
    "kizashi_rule_first_action_median_seconds",
    "Median time from a signal firing to the first action a person took on it (90 days)",
    ["rule"],
)

# The recycle process (issue #21; kizashi.triggers.recycle).
RECYCLE_PARKED = Counter(
    "kizashi_triggers_recycle_parked_total",
    'Opportunities resolved "not now" that put their account on the recycle list, by reason',
    ["reason"],
)
RECYCLE_RETURNED = Counter(
    "kizashi_triggers_recycle_returned_total",
    "Recycled accounts that came back as a new opportunity, by the reason they were parked",
    ["reason"],
)
# Refreshed with the rule gauges, from the tables: every replica reports the same figures.
RECYCLE_WAITING = Gauge(
    "kizashi_recycle_waiting_accounts",
    "Accounts waiting on the recycle list now, by the reason they were parked",
    ["reason"],
)
RULE_STAGES = Gauge(
    "kizashi_rule_opportunity_stage_signals",
    "Opportunities the rule fired in the last 90 days, by stage reached: fired, acted_on (a "
    "person acted), won (resolved with reason won)",
    ["rule", "stage"],
)
