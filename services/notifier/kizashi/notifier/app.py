"""The notifier service's FastAPI app: the signal consumer, the delivery worker, the API."""

import functools

from fastapi import FastAPI

from kizashi.contracts.topics import CONSUMED_BY
from kizashi.notifier import api, unsubscribe
from kizashi.notifier.consumer import handle_signals
from kizashi.notifier.deliver import delivery_loop
from kizashi.notifier.pacing import SharedPacer
from kizashi.notifier.playbooks import unreachable_unsubscribe
from kizashi.notifier.render import Renderer
from kizashi.notifier.routing import load_routing_config_for
from kizashi.notifier.routing_config import RoutingConfigError
from kizashi.notifier.settings import NotifierSettings, get_settings
from kizashi.notifier.state import NotifierState
from kizashi.notifier.transport import SmtpSender, WebhookSender
from kizashi.runtime.app import create_service_app
from kizashi.runtime.lifecycle import ServiceRuntime
from kizashi.runtime.retry import RetryPolicy


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    smtp_url = settings.smtp_url.get_secret_value() if settings.smtp_url else None
    # Validated before anything starts: a bad routing.yaml stops the service with its reason.
    routing = load_routing_config_for(settings)
    renderer = Renderer(settings.config_dir)
    # So is every enabled customer playbook's template (kizashi.notifier.customer).
    enabled = {p.template for p in routing.customer.playbooks.values() if p.enabled}
    if missing := renderer.missing_customer_templates(sorted(enabled)):
        raise RoutingConfigError(f"{routing.source}: customer_emails: no {', '.join(missing)}")
    # And customers must be able to reach the unsubscribe link those emails carry.
    unreachable = unreachable_unsubscribe(
        routing.customer, smtp_configured=bool(smtp_url), public_url=settings.notifier_public_url
    )
    if unreachable:
        raise RoutingConfigError(f"{routing.source}: {unreachable}")

    async def setup(runtime: ServiceRuntime) -> NotifierState:
        service = NotifierState(
            runtime=runtime,
            routing=routing,
            renderer=renderer,
            # One pace per webhook for every replica, kept in PostgreSQL.
            webhooks=WebhookSender(pacer=SharedPacer(runtime.engine)),
            smtp=SmtpSender.from_url(smtp_url, sender=settings.email_from) if smtp_url else None,
            retry=RetryPolicy(
                max_attempts=settings.delivery_max_attempts,
                base=settings.delivery_retry_base_s,
                cap=settings.delivery_retry_cap_s,
            ),
            action_secret=settings.signing_secret(),
            public_url=settings.public_url,
            console_url=settings.console_url,
            unsubscribe_base_url=settings.unsubscribe_base_url(),
            verifying_secrets=tuple(settings.verifying_secrets()),
            email_from=settings.email_from,
            lease_s=settings.delivery_lease_s,
        )
        runtime.consume(list(CONSUMED_BY["notifier"]), functools.partial(handle_signals, service))
        runtime.background(delivery_loop(service), name="deliveries")
        return service

    return create_service_app(
        service="notifier", settings=settings, routers=[api.router, unsubscribe.router], setup=setup
    )
