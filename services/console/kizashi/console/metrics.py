"""The console's own metrics (the shared runtime adds the HTTP ones). No label ever holds an
email or an account id."""

from prometheus_client import Counter

SIGNINS = Counter(
    "kizashi_console_signins_total",
    "Sign-in attempts by outcome (ok, refused, throttled)",
    ["outcome"],
)
ACTIONS = Counter(
    "kizashi_console_actions_total",
    "Signal actions taken on the console, by action and outcome (done, forbidden, conflict, "
    "refused: a resolution's reason missing or not fitting, failed)",
    ["action", "outcome"],
)
TOKENS = Counter(
    "kizashi_console_api_tokens_total", "Personal API tokens created and revoked", ["event"]
)
OBSERVATIONS = Counter(
    "kizashi_console_observations_total",
    "Observations sent from the account page, by outcome (logged, refused, failed, forbidden)",
    ["outcome"],
)
