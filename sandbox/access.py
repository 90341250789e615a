"""Who may use the providers' dashboards in the sandbox: whoever runs this
installation (a superuser), never clients, the public, or staff of a back-office group.

The pages a provider shows everybody stay open, as at Stripe and Calendly: a
Checkout page, a receipt, a scheduling page, an invitee's cancel and reschedule
links. The APIs check their own keys. The dashboards (every session, invitee and
webhook delivery, fault knobs, resets) list other people's data and change what the
"providers" do (a restricted key made there refunds at "Stripe" directly), so they
need a signed-in superuser: an Auditor or Support member is staff, not the operator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import reverse


def operator_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not request.user.is_superuser:
            raise PermissionDenied("The sandbox's dashboards are for the operator.")
        return view(request, *args, **kwargs)

    return wrapped
