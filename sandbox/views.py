from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from sandbox import db, delivery
from sandbox.access import operator_only
from sandbox.models import Delivery
from sandbox.reset import reset_sandbox


@operator_only
@require_safe
def index(request: HttpRequest) -> HttpResponse:
    delivery.wake()  # resume deliveries left pending by a restart
    return render(request, "sandbox/index.html")


@operator_only
@require_safe
def deliveries(request: HttpRequest) -> HttpResponse:
    delivery.wake()
    queryset = Delivery.objects.prefetch_related("attempt_log")
    provider = request.GET.get("provider")
    if provider in Delivery.Provider.values:
        queryset = queryset.filter(provider=provider)
    page = Paginator(queryset, 25).get_page(request.GET.get("page"))
    return render(
        request,
        "sandbox/deliveries.html",
        {"page": page, "provider": provider, "providers": Delivery.Provider.choices},
    )


@operator_only
@require_safe
def delivery_detail(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(Delivery.objects.prefetch_related("attempt_log"), pk=pk)
    return render(request, "sandbox/delivery_detail.html", {"delivery": item})


@operator_only
@require_POST
def redeliver(request: HttpRequest, pk: int) -> HttpResponse:
    """Send a delivery again now, as the providers' dashboards allow."""
    with db.atomic():
        item = get_object_or_404(Delivery.objects.select_for_update(), pk=pk)
        item.status = Delivery.Status.PENDING
        item.next_attempt_at = timezone.now()
        item.save(update_fields=["status", "next_attempt_at"])
        db.on_commit(delivery.wake)
    messages.info(request, "Queued for redelivery.")
    return redirect("sandbox:delivery", pk=pk)


@operator_only
@require_POST
def reset(request: HttpRequest) -> HttpResponse:
    counts = reset_sandbox()
    messages.info(request, f"Sandbox reset: {sum(counts.values())} rows removed.")
    return redirect("sandbox:index")
