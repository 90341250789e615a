from tests.sandbox.stripe.helpers import stripe_sandbox, stripe_webhooks

__all__ = ["stripe_sandbox", "stripe_webhooks"]
