from prometheus_client import Counter

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
SIGNAL_ACTIONS = Counter(
    "kizashi_triggers_signal_actions_total", "Lifecycle actions on signals", ["action"]
)
SWEPT_ACCOUNTS = Counter(
    "kizashi_triggers_swept_accounts_total",
    "Accounts the periodic sweep evaluated (only those due: time can change a rule for them)",
)
