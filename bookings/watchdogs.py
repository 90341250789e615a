"""The Calendly webhook subscription (core/alerts.py runs it every five minutes).

Without an active subscription no booking, cancellation or no-show reaches us, and
nothing else would notice: the site keeps working while clients pay for slots we
never record. Calendly disables a subscription after a day of failed deliveries;
this finds it through the API, recreates it (bookings/calendly_webhooks.py) and
alerts, since the events of the days it was off must be reconciled. The alert
clears on the first pass that finds every subscription of ours active.
"""

from __future__ import annotations

from django.conf import settings

from bookings.calendly import CalendlyClient
from bookings.calendly_webhooks import subscriptions_repair
from core.alerts import Problem, register_watchdog

NAME = "bookings.calendly_subscription"
RECONCILE = "Events Calendly sent meanwhile were not delivered: run manage.py reconcile."


def calendly_subscription() -> list[Problem]:
    with CalendlyClient() as client:
        report = subscriptions_repair(client=client)
    problems = []
    if report.recreated:
        problems.append(
            Problem(
                f"{NAME}.disabled",
                f"Calendly had disabled {len(report.recreated)} webhook subscription(s) "
                "after failed deliveries; recreated.",
                [
                    *(
                        f"Subscription {r.disabled.uuid} → {r.created.uuid} "
                        f"({', '.join(r.disabled.events)})"
                        for r in report.recreated
                    ),
                    "Find out why our endpoint failed (the inbox, the web server's log).",
                    RECONCILE,
                ],
            )
        )
    if report.failed:
        problems.append(
            Problem(
                f"{NAME}.not_recreated",
                f"{len(report.failed)} disabled Calendly webhook subscription(s) could not "
                "be recreated: no Calendly events reach us.",
                [
                    *(f"Subscription {f.disabled.uuid}: {f.error}" for f in report.failed),
                    "Create it in Calendly (or let the next pass retry) and check the "
                    "token's rights (webhooks:write).",
                    RECONCILE,
                ],
            )
        )
    elif not report.active and not report.recreated:
        problems.append(
            Problem(
                f"{NAME}.missing",
                "No Calendly webhook subscription posts to our endpoint: no Calendly "
                "events reach us.",
                [
                    f"Subscribe {settings.SITE_URL}/webhooks/calendly/<CALENDLY_WEBHOOK_PATH_"
                    "TOKEN>/ to invitee.created, invitee.canceled and the no-show events.",
                    RECONCILE,
                ],
            )
        )
    return problems


register_watchdog(NAME, calendly_subscription)
