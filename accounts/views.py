"""The client's own pages in accounts: signing in, and "My data" (ask for a copy, or for
erasure)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.defaultfilters import date as date_filter
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from accounts import dsr
from accounts.forms import ClientAuthenticationForm
from accounts.models import DataSubjectRequest


class SignInView(auth_views.LoginView):
    """The site's sign-in page, by email. Without a safe ``next``, clients and builders
    land on their bookings and staff on the back-office (their work is there)."""

    template_name = "accounts/login.html"
    authentication_form = ClientAuthenticationForm
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        if self.request.user.is_staff:
            return reverse("admin:index")
        return super().get_default_redirect_url()


# What a client may ask for themselves; a correction goes through support.
CLIENT_KINDS = (DataSubjectRequest.Kind.ACCESS, DataSubjectRequest.Kind.ERASURE)


@login_required
@require_safe
def my_data(request: HttpRequest) -> HttpResponse:
    requests = DataSubjectRequest.objects.filter(subject_id=request.user.pk).order_by(
        "-received_at"
    )
    open_kinds = {r.kind for r in requests if r.is_open}
    return render(
        request,
        "accounts/privacy/my_data.html",
        {
            "requests": requests,
            "can_file": [kind for kind in CLIENT_KINDS if kind not in open_kinds],
        },
    )


@login_required
@require_POST
def my_data_file(request: HttpRequest) -> HttpResponse:
    kind = request.POST.get("kind", "")
    if kind not in CLIENT_KINDS:
        messages.error(request, "Choose a copy of your data or its erasure.")
        return HttpResponseRedirect(reverse("accounts:my_data"))
    try:
        filed = dsr.dsr_file(
            subject=request.user,  # type: ignore[arg-type]
            kind=kind,
            actor=request.user,  # type: ignore[arg-type]
            filed_by_subject=True,
        )
    except dsr.DsrRefused as exc:
        messages.error(request, str(exc))
    else:
        due = date_filter(timezone.localtime(filed.due_at), "j F Y")  # the table's, in their zone
        messages.success(
            request,
            f"We received your request ({filed.get_kind_display().lower()}, "
            f"reference {filed.pk}). We will answer by {due}.",
        )
    return HttpResponseRedirect(reverse("accounts:my_data"))
