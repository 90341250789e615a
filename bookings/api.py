"""The bookings API (``/api/v1/``): clients see their own bookings, builders theirs.

Callers sign in with a personal API token (``Authorization: Bearer slp_...``, limited
to its scopes: each view's ``required_scope``) or, in a browser, the session cookie
(unsafe methods then need the CSRF token). Someone else's booking is a 404, the same
as one that does not exist. Errors have one shape,
``{"error": {"code": ..., "message": ...}}``; the codes are listed in ``ERROR_CODES``
and in the OpenAPI schema (``/api/schema/``, read at ``/api/docs/`` and ``/api/redoc/``).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, permissions, serializers, status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView, exception_handler

from accounts.api_auth import REALM, InsufficientScope, TokenHasScope
from accounts.models import ApiToken
from bookings import calendly, selectors, services
from bookings.models import Booking, EventType
from core.timezones import viewer_zone
from payments import stripe_gateway
from payments.models import Payment
from payments.money import format_money

ERROR_CODES = {
    "not_authenticated": "401: send a token (Authorization: Bearer slp_...) or sign in.",
    "authentication_failed": "401: the token was refused (unknown, expired or revoked).",
    "permission_denied": "403: this account may not do this, or the token lacks the scope named.",
    "not_found": "404: no such object, or not yours.",
    "method_not_allowed": "405: this method is not supported here.",
    "cancel_refused": "409: the booking cannot be canceled (its status or its time).",
    "provider_unavailable": "503: Calendly or Stripe did not answer; nothing changed, retry.",
    "throttled": "429: too many requests; retry after the time given.",
    "invalid": "400: the request is malformed.",
}


# The errors any operation may answer, whoever calls: a refused or missing token (401),
# a scope or permission (403), an object that is not the caller's or a page past the
# end (404), a rate limit (429), a malformed request (400).
COMMON_ERRORS = {
    "400": "invalid",
    "401": "not_authenticated, authentication_failed",
    "403": "permission_denied",
    "404": "not_found",
    "429": "throttled",
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": sorted(ERROR_CODES)},
                "message": {"type": "string"},
            },
        }
    },
}


def document_errors(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the one error shape as a component, and on
    every operation the common errors besides those the view documents itself (each
    with that body)."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for status_code, codes in COMMON_ERRORS.items():
                responses.setdefault(status_code, {"description": codes})
            for status_code, response in responses.items():
                if status_code.startswith(("4", "5")):
                    response["content"] = body
    return result


NOT_AUTHENTICATED = (
    "Send an API token (Authorization: Bearer slp_...; make one at /accounts/tokens/) or sign in."
)


class CancelRefused(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "cancel_refused"


class ProviderUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "provider_unavailable"
    default_detail = "A provider did not answer. Nothing changed: try again in a minute."


def handle_exception(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with every error in one documented shape."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "invalid"
    else:  # Django's Http404 and PermissionDenied, which DRF answers as its own
        code = {404: "not_found", 403: "permission_denied"}.get(response.status_code, "invalid")
    detail = response.data.get("detail") if isinstance(response.data, dict) else None
    if code == "not_authenticated":  # DRF's "credentials were not provided" says not how
        detail = NOT_AUTHENTICATED
    response.data = {"error": {"code": code, "message": str(detail or exc)}}
    if isinstance(exc, InsufficientScope):
        response["WWW-Authenticate"] = (
            f'Bearer realm="{REALM}", error="insufficient_scope", scope="{exc.scope}"'
        )
    return response


# Each view: who may call it, and the scope a token needs for it.
SIGNED_IN = [permissions.IsAuthenticated, TokenHasScope]
Scope = ApiToken.Scope


DATETIME_HELP = (
    "ISO 8601 with the UTC offset of your account's time zone (UTC, written Z, if you "
    "have not chosen one). To show it as Slotpay's pages do, convert it to `time_zone`."
)
# The client's own card and receipt: builders get null (docs/data-inventory.md).
CLIENT_ONLY_PAYMENT_FIELDS = ("card_brand", "card_last4", "receipt_url")
CLIENT_ONLY_HELP = "Only for the booking's client; null for the builder."


def _datetime(**options: Any) -> serializers.DateTimeField:
    return serializers.DateTimeField(read_only=True, help_text=DATETIME_HELP, **options)


def _client_only(help_text: str) -> serializers.CharField:
    return serializers.CharField(
        read_only=True, allow_null=True, help_text=f"{help_text} {CLIENT_ONLY_HELP}"
    )


class PaymentSerializer(serializers.ModelSerializer):
    display_amount = serializers.SerializerMethodField()
    status_display = serializers.CharField(
        source="display_status",
        read_only=True,
        help_text=(
            "The status as Slotpay's pages show it: an `open` payment whose bank debit is on "
            'its way is "Payment processing".'
        ),
    )
    card_brand = _client_only("The card's brand (visa, mastercard, ...).")
    card_last4 = _client_only("The card number's last four digits.")
    receipt_url = _client_only("Stripe's receipt.")
    paid_at = _datetime(allow_null=True)

    class Meta:
        model = Payment
        fields = [
            "status",
            "status_display",
            "amount",
            "currency",
            "display_amount",
            "tax_amount",
            "card_brand",
            "card_last4",
            "receipt_url",
            "paid_at",
        ]

    def get_display_amount(self, payment: Payment) -> str:
        return format_money(payment.amount, payment.currency)


class BookingSerializer(serializers.ModelSerializer):
    """A booking as its client or its builder sees it; needs the request in its context
    (without one, the card fields are withheld)."""

    id = serializers.UUIDField(source="reference", read_only=True)
    event_type = serializers.IntegerField(source="event_type_id", read_only=True)
    event_type_title = serializers.CharField(source="event_type.title", read_only=True)
    builder = serializers.CharField(source="builder.name", read_only=True)
    start_at = _datetime()
    end_at = _datetime()
    created_at = _datetime()
    invitee_time_zone = serializers.CharField(
        read_only=True, help_text="The IANA time zone the client picked on Calendly."
    )
    time_zone = serializers.SerializerMethodField(
        help_text=(
            "The IANA time zone Slotpay's pages show this booking's times in, to you: your "
            "account's time zone if you chose one; else, as the client, `invitee_time_zone`; "
            "as the builder, the builder's."
        )
    )
    price = serializers.SerializerMethodField()
    payments = PaymentSerializer(many=True, read_only=True)

    class Meta:
        model = Booking
        fields = [
            "id",
            "status",
            "event_type",
            "event_type_title",
            "builder",
            "start_at",
            "end_at",
            "invitee_time_zone",
            "time_zone",
            "price_amount",
            "currency",
            "price",
            "payments",
            "created_at",
        ]

    def get_price(self, booking: Booking) -> str:
        return format_money(booking.price_amount, booking.currency)

    def get_time_zone(self, booking: Booking) -> str:
        user = self._viewer()
        if self._is_client(booking):
            return viewer_zone(user, booking=booking).key
        return viewer_zone(user, builder=booking.builder).key

    def to_representation(self, booking: Booking) -> dict[str, Any]:
        data = super().to_representation(booking)
        if not self._is_client(booking):
            for payment in data["payments"]:
                payment.update(dict.fromkeys(CLIENT_ONLY_PAYMENT_FIELDS))
        return data

    def _viewer(self) -> Any:
        request = self.context.get("request")
        return getattr(request, "user", None)

    def _is_client(self, booking: Booking) -> bool:
        user = self._viewer()
        return bool(user is not None and user.is_authenticated and booking.client_id == user.pk)


class EventTypeSerializer(serializers.ModelSerializer):
    builder = serializers.CharField(source="builder.name", read_only=True)
    price = serializers.SerializerMethodField()

    class Meta:
        model = EventType
        fields = [
            "id",
            "builder",
            "title",
            "duration_minutes",
            "price_amount",
            "currency",
            "price",
            "refund_policy",
            "refund_policy_version",
            "automatic_tax",
            "scheduling_url",
        ]

    def get_price(self, event_type: EventType) -> str:
        return format_money(event_type.price_amount, event_type.currency)


class BookingList(generics.ListAPIView):
    """Your bookings: as a client, the ones you made; as a builder, your builder's.

    Token scope: `bookings:read`."""

    serializer_class = BookingSerializer
    permission_classes = SIGNED_IN
    required_scope = Scope.BOOKINGS_READ.value

    def get_queryset(self) -> Any:
        return (
            selectors.booking_list_visible_to(user=self.request.user)
            .select_related("event_type", "builder")
            .prefetch_related("payments")
            .order_by("-start_at")
        )


class BookingDetail(generics.RetrieveAPIView):
    """One of your bookings, with its payments.

    Token scope: `bookings:read`."""

    serializer_class = BookingSerializer
    permission_classes = SIGNED_IN
    required_scope = Scope.BOOKINGS_READ.value
    lookup_field = "reference"
    lookup_url_kwarg = "id"

    def get_queryset(self) -> Any:
        return BookingList.get_queryset(self)  # type: ignore[arg-type]


class BookingCancel(APIView):
    """Cancel your booking: Calendly frees the slot and the policy's refund is made.

    Token scope: `bookings:write`. Signed in with the session cookie instead, send the
    CSRF token."""

    permission_classes = SIGNED_IN
    required_scope = Scope.BOOKINGS_WRITE.value

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "CancelResult",
                {"booking": BookingSerializer(), "refund_amount": serializers.IntegerField()},
            ),
            404: OpenApiResponse(description="not_found"),
            409: OpenApiResponse(description="cancel_refused"),
            503: OpenApiResponse(description="provider_unavailable"),
        },
    )
    def post(self, request: Request, id: str) -> Response:
        booking = selectors.booking_get_for_client(user=request.user, reference=id)
        try:
            # A User, not AnonymousUser: IsAuthenticated (the stubs cannot know).
            amount = services.booking_cancel_by_client(
                booking=booking,
                actor=request.user,  # type: ignore[arg-type]
            )
        except services.CancelRefused as exc:
            raise CancelRefused(str(exc)) from None
        except (calendly.CalendlyError, stripe_gateway.PaymentProviderError):
            raise ProviderUnavailable() from None
        booking.refresh_from_db()
        return Response(
            {
                "booking": BookingSerializer(booking, context={"request": request}).data,
                "refund_amount": amount,
            }
        )


class EventTypeList(generics.ListAPIView):
    """Sessions on offer, with price and refund policy: public, as the builders' pages
    are (no sign-in needed).

    Token scope: `event_types:read`."""

    serializer_class = EventTypeSerializer
    permission_classes = [permissions.AllowAny, TokenHasScope]
    required_scope = Scope.EVENT_TYPES_READ.value

    def get_queryset(self) -> Any:
        return selectors.event_type_list_on_offer(user=self.request.user)


class ApiRoot(APIView):
    """What the API offers, and where it is described: public, with or without a token."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(
        tags=["root"],
        operation_id="root",
        responses=inline_serializer(
            "ApiRoot",
            {
                "bookings": serializers.URLField(),
                "event_types": serializers.URLField(),
                "schema": serializers.URLField(),
                "docs": serializers.URLField(),
                "redoc": serializers.URLField(),
                "tokens": serializers.URLField(help_text="Where to make an API token."),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "bookings": reverse("api:bookings", request=request),
                "event_types": reverse("api:event-types", request=request),
                "schema": reverse("api-schema", request=request),
                "docs": reverse("api-docs", request=request),
                "redoc": reverse("api-redoc", request=request),
                "tokens": reverse("accounts:tokens", request=request),
            }
        )
