"""What every provider client's errors have in common, for code that knows no provider.

``payments.stripe_gateway`` and ``bookings.calendly`` raise subclasses of
:class:`ProviderError`; the webhook pipeline, which may not import either app, reads
``permanent`` to decide between ignoring an event and retrying it.
"""

from __future__ import annotations


class ProviderError(Exception):
    """A call to Stripe or Calendly was refused or failed.

    ``permanent`` is whether asking again can change the answer:

    - True: the provider says the object does not exist (404) or the request is
      invalid (400, 422, a declined card). The same request gets the same answer.
    - False: a timeout, no connection, a rate limit (429) or a provider error (5xx),
      which pass; and our credentials refused (401, 403), which is our
      misconfiguration: events meanwhile must fail loudly and wait for the fix, not
      be dropped as if they were about nothing.
    """

    permanent: bool = False
