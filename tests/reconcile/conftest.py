from tests.bookings.conftest import api_base, calendly, event_type
from tests.bookings.world import world
from tests.sandbox.stripe.helpers import stripe_sandbox

__all__ = ["api_base", "calendly", "event_type", "stripe_sandbox", "world"]
