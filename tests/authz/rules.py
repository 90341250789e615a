"""Who may reach each route: the authorization matrix's table (issue 14, point 2).

Every route of the URL configuration (pages, API, admin, the sandbox where the test
profile mounts it) is classified here by its pattern, the full string from the root
(``bookings/<uuid:reference>/cancel/``). A route that no rule classifies fails the
matrix ("new route X: add a rule"), and so does a rule that no longer classifies any
route: the table says what the site is, no more and no less.

The people who ask (``PRINCIPALS``): ``anonymous``; two clients and two builders (the
builders' owners), ``*_a`` and ``*_b``; a member of each staff group; a superuser.
Routes with an object in their path are filled with tenant B's object (client B's
booking, builder B's studio, B's token), so everyone but B's own people asks for
someone else's.

A rule names who may get a 2xx answer, for reads (GET) and for writes (POST, and PUT,
PATCH, DELETE on the API); everyone else must get a refusal (a 3xx to a sign-in or
step-up page, a 4xx). Nobody may ever get a 5xx. ``must_read`` names who must get a
200 on GET: a rule that refuses everyone by mistake fails too.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

ANONYMOUS = "anonymous"
CLIENTS = ("client_a", "client_b")
BUILDERS = ("builder_a", "builder_b")
GROUPS = ("Support", "Finance", "Privacy", "Auditor")
SUPERUSER = "superuser"
PRINCIPALS = (ANONYMOUS, *CLIENTS, *BUILDERS, *GROUPS, SUPERUSER)
STAFF = frozenset((*GROUPS, SUPERUSER))
EVERYONE = frozenset(PRINCIPALS)
SIGNED_IN = EVERYONE - {ANONYMOUS}
NOBODY: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rule:
    """What one class of route allows.

    ``kind`` names the class in messages; ``read`` and ``write`` who may get a 2xx
    for GET and for the state-changing methods; ``must_read`` who must get a 200 on
    GET; ``api`` adds PUT, PATCH and DELETE to the methods tried. ``fill`` maps a
    path parameter to the world's value for it (``tests/authz/conftest.py``), or to
    a literal after ``=``."""

    kind: str
    read: frozenset[str]
    write: frozenset[str]
    must_read: frozenset[str] = NOBODY
    api: bool = False
    fill: dict[str, str] = field(default_factory=dict)
    redirects: str = ""  # a path anyone may be redirected to (a regex), besides refusals
    button: bool = False  # in the admin, a bare POST is the whole action (no form to fill)

    def allows(self, principal: str, method: str) -> bool:
        return principal in (self.read if method == "GET" else self.write)


def public(**fill: str) -> Rule:
    """Anyone, signed in or not: home, sign-in and sign-up, the builders' pages, links
    that carry their own secret (a wrong secret is a page saying so, not data)."""
    return Rule("public", EVERYONE, EVERYONE, fill=fill)


def signed_in(*, api: bool = False, must_read: frozenset[str] = NOBODY) -> Rule:
    """Anyone signed in, about themselves (their account, their own list)."""
    return Rule("signed-in", SIGNED_IN, SIGNED_IN, must_read=must_read, api=api)


def own(
    read: AbstractSet[str],
    write: AbstractSet[str] | None = None,
    *,
    api: bool = False,
    page: bool = True,
    **fill: str,
) -> Rule:
    """Tenant-scoped: filled with tenant B's object, only B's own people may have it;
    everyone else (tenant A, staff on the site's pages, the public) is refused. A
    ``page`` is read by its people (200); an action (POST only) is not."""
    reads = frozenset(read)
    return Rule(
        "own-objects",
        reads,
        reads if write is None else frozenset(write),
        must_read=reads if page else NOBODY,
        api=api,
        fill=fill,
    )


def staff(
    read: AbstractSet[str],
    write: AbstractSet[str] | None = None,
    *,
    must_read: bool = False,
    button: bool = False,
    **fill: str,
) -> Rule:
    """The back-office: only the staff groups named (and superusers, named too). An
    empty POST changes nothing there, except where a ``button`` is the whole form."""
    reads = frozenset(read)
    return Rule(
        "staff",
        reads,
        reads if write is None else frozenset(write),
        must_read=reads if must_read else NOBODY,
        button=button,
        fill=fill,
    )


def refused_to_all(kind: str, **fill: str) -> Rule:
    """Nobody of the cast gets a 2xx: webhooks without a provider's signature, the
    sandbox's provider APIs without the provider's key."""
    return Rule(kind, NOBODY, NOBODY, fill=fill)


def operator(**fill: str) -> Rule:
    """The sandbox's dashboards (sandbox/access.py): the superuser who runs the
    installation, never a client or a back-office group."""
    only = frozenset({SUPERUSER})
    return Rule("sandbox-operator", only, only, fill=fill)


def admin_model(
    app: str,
    model: str,
    view: AbstractSet[str],
    *,
    add: AbstractSet[str] = NOBODY,
    change: AbstractSet[str] = NOBODY,
    delete: AbstractSet[str] = NOBODY,
    superuser_writes: bool = True,
) -> list[tuple[str, Rule]]:
    """A ModelAdmin's six routes. ``view`` are the groups with its view permission
    (they read the list, an object, its history); ``add``, ``change`` and ``delete``
    the groups that may also write. A superuser reads every admin; read-only admins
    (core/admin.py) refuse even a superuser's writes, which ``superuser_writes``
    says."""
    root = f"admin/{app}/{model}/"
    su = {SUPERUSER}
    writer: AbstractSet[str] = su if superuser_writes else NOBODY
    viewers = frozenset(view | su)
    obj = f"{app}.{model}"
    return [
        (re.escape(root), staff(viewers, viewers, must_read=True)),
        (re.escape(f"{root}add/"), staff(add | writer, add | writer)),
        (
            re.escape(f"{root}<path:object_id>/history/"),
            staff(viewers, viewers, must_read=True, object_id=obj),
        ),
        (
            re.escape(f"{root}<path:object_id>/delete/"),
            staff(delete | writer, delete | writer, object_id=obj),
        ),
        (
            re.escape(f"{root}<path:object_id>/change/"),
            staff(viewers, change | writer, must_read=True, object_id=obj),
        ),
        # The bare object URL only redirects to its change page, which decides.
        (
            re.escape(f"{root}<path:object_id>/"),
            Rule(
                "redirect",
                NOBODY,
                NOBODY,
                fill={"object_id": obj},
                redirects="/" + re.escape(root) + r"\d+/change/",
            ),
        ),
    ]


# (pattern, rule): the first whose pattern matches the whole route classifies it.
RULES: list[tuple[str, Rule]] = [
    # --- site: health, public pages, sign-in and links that carry a secret ---
    (r"", public()),
    (r"healthz|readyz", public()),
    (r"accounts/(login|logout|signup|signup/done|verify/resend|password/reset)/", public()),
    (r"accounts/(session/ended|session/recover)/", public()),
    (r"accounts/verify/<str:secret>/", public(secret="=no-such-secret")),
    (r"accounts/invitation/<str:secret>/", public(secret="=no-such-secret")),
    (r"accounts/password/reset/<str:secret>/", public(secret="=no-such-secret")),
    (r"accounts/session/recover/<str:secret>/", public(secret="=no-such-secret")),
    (r"api/(schema|docs|redoc)/", public()),
    (r"builders/", public()),
    (r"builders/<slug:slug>/", public(slug="builder_b.slug")),
    (r"sessions/<int:pk>/", public(pk="event_type_b.pk")),
    # --- site: signed in, about oneself ---
    (r"accounts/(step-up|two-factor)/", signed_in()),
    (r"accounts/(privacy|privacy/request|profile|password|tokens)/", signed_in()),
    (r"accounts/", signed_in()),
    (r"accounts/session/sign-out-everywhere/", signed_in()),
    (r"bookings/", signed_in()),
    (r"bookings/(scheduled|claim)/", signed_in()),
    (r"builder/bookings/", own({"builder_a", "builder_b"})),
    # --- site: tenant B's objects ---
    (
        r"bookings/<uuid:reference>/(paid/)?",
        own({"client_b"}, reference="booking_b.reference"),
    ),
    (
        r"bookings/<uuid:reference>/(pay|cancel)/",
        own({"client_b"}, page=False, reference="booking_b.reference"),
    ),
    (
        r"builder/bookings/<uuid:reference>/(no-show|cancel)/",
        own({"builder_b"}, page=False, reference="booking_b.reference"),
    ),
    (
        r"accounts/builders/<slug:slug>/invite/",
        own({"builder_b"}, page=False, slug="builder_b.slug"),
    ),
    (r"accounts/tokens/<int:pk>/revoke/", own({"client_b"}, page=False, pk="token_b.pk")),
    # --- API (session-authenticated here; tokens are tests/bookings/test_api_tokens) ---
    # Its root and the builders' offer are public, as the site's pages are.
    (r"api/v1/(event-types/)?", Rule("public", EVERYONE, EVERYONE, api=True)),
    (r"api/v1/bookings/", signed_in(api=True)),
    (
        r"api/v1/bookings/<uuid:id>/",
        own({"client_b", "builder_b"}, set(), api=True, id="booking_b.reference"),
    ),
    (
        r"api/v1/bookings/<uuid:id>/cancel/",
        own({"client_b"}, api=True, page=False, id="booking_b.reference"),
    ),
    # --- webhooks: a provider's signature or nothing ---
    (
        r"webhooks/\^\(\?P<provider>.*",
        refused_to_all("webhook", provider="=stripe", token="stripe_webhook_token"),
    ),
    # --- admin: Django's own pages ---
    (r"admin/(login|logout)/", public()),
    (r"admin/", staff(set(STAFF), set(STAFF), must_read=True)),
    (r"admin/(password_change|password_change/done|jsi18n)/", staff(set(STAFF))),
    (r"admin/autocomplete/", staff(set(STAFF))),
    (
        r"admin/r/<path:content_type_id>/<path:object_id>/",
        staff(NOBODY, content_type_id="booking_content_type", object_id="booking_b.pk"),
    ),
    (r"admin/\^\(\?P<app_label>.*", staff(set(STAFF), app_label="=payments")),
    (r"admin/\(\?P<url>.*", staff(NOBODY, url="=no/such/page/")),
    # --- admin: the back-office's own views ---
    (r"admin/accounts/user/access-review/", staff({"Auditor", SUPERUSER})),
    (
        r"admin/accounts/user/<path:object_id>/change/reveal/",
        staff({"Support", "Privacy", SUPERUSER}, object_id="accounts.user"),
    ),
    (r"admin/accounts/user/<id>/password/", staff({SUPERUSER}, id="accounts.user")),
    (
        r"admin/accounts/builder/<path:object_id>/invite/",
        staff({SUPERUSER}, object_id="accounts.builder"),
    ),
    (
        r"admin/accounts/datasubjectrequest/<int:pk>/(export|rectify|erase|close)/",
        # Preparing an export is one button, without step-up (accounts/dsr_admin.py).
        staff({"Privacy", SUPERUSER}, button=True, pk="accounts.datasubjectrequest"),
    ),
    (
        r"admin/accounts/datasubjectrequest/export/<str:token>/",
        staff({"Privacy", SUPERUSER}, token="=no-such-secret"),
    ),
    (r"admin/audit/auditentry/verify/", staff({"Auditor", SUPERUSER})),
    (r"admin/audit/auditcheckpoint/export/", staff({"Auditor", SUPERUSER})),
    (
        r"admin/bookings/booking/<int:object_id>/(refund|cancel-for-client)/",
        staff({"Finance", SUPERUSER}, object_id="bookings.booking"),
    ),
    (
        r"admin/bookings/booking/<int:object_id>/send-claim/",
        staff({"Support", SUPERUSER}, object_id="bookings.booking"),
    ),
    (
        r"admin/bookings/booking/<path:object_id>/change/reveal/",
        staff({"Support", "Privacy", SUPERUSER}, object_id="bookings.booking"),
    ),
    # --- admin: the models, by the groups of accounts/roles.py ---
    *admin_model("accounts", "user", {"Support", "Privacy"}, delete={"Privacy"}),
    *admin_model("accounts", "builder", {"Support", "Finance"}),
    *admin_model("auth", "group", set()),
    *admin_model(
        "accounts",
        "datasubjectrequest",
        {"Privacy"},
        add={"Privacy"},
        change={"Privacy"},
    ),
    *admin_model("otp_totp", "totpdevice", set()),
    *admin_model("axes", "accessattempt", set()),
    *admin_model("axes", "accesslog", set()),
    *admin_model("axes", "accessfailurelog", set()),
    *admin_model("core", "alert", {"Auditor", "Finance", "Privacy"}, superuser_writes=False),
    *admin_model("audit", "auditentry", {"Auditor"}, superuser_writes=False),
    *admin_model("audit", "auditcheckpoint", {"Auditor"}, superuser_writes=False),
    *admin_model("audit", "securityeventcount", {"Auditor"}, superuser_writes=False),
    *admin_model("payments", "payment", {"Support", "Finance"}, superuser_writes=False),
    *admin_model("payments", "refund", {"Support", "Finance"}, superuser_writes=False),
    *admin_model("payments", "refundapproval", {"Finance"}, superuser_writes=False),
    *admin_model("payments", "dispute", {"Support", "Finance"}, superuser_writes=False),
    *admin_model("bookings", "eventtype", {"Support"}),
    *admin_model("bookings", "booking", {"Support", "Finance", "Privacy"}, superuser_writes=False),
    *admin_model("bookings", "drift", {"Support", "Finance"}, superuser_writes=False),
    *admin_model("webhooks", "webhookevent", {"Auditor"}, superuser_writes=False),
    *admin_model("webhooks", "webhookrejection", set(), superuser_writes=False),
    # --- sandbox (development and test only): what a provider shows everybody ---
    (r"sandbox/stripe/checkout/<str:session_id>/", public(session_id="=no-such-secret")),
    (r"sandbox/stripe/receipts/<str:charge_id>/", public(charge_id="=no-such-secret")),
    (r"sandbox/calendly/(booked)/", public()),
    (r"sandbox/calendly/(cancellations|reschedulings)/<str:uuid>/", public(uuid="=no-such-secret")),
    (r"sandbox/calendly/<slug:host_slug>/", public(host_slug="=nobody")),
    (
        r"sandbox/calendly/<slug:host_slug>/<slug:event_type_slug>/",
        public(host_slug="=nobody", event_type_slug="=nothing"),
    ),
    # --- sandbox: the providers' APIs check the provider's key ---
    (
        r"sandbox/stripe/v1/.*",
        refused_to_all(
            "sandbox-api", id="=no-such-secret", rest="=accounts", event_uuid="=no-such-secret"
        ),
    ),
    (
        r"sandbox/calendly/api/.*",
        refused_to_all("sandbox-api", uuid="=no-such-secret", event_uuid="=no-such-secret"),
    ),
    # --- sandbox: the operator's dashboards ---
    (r"sandbox/(deliveries/|reset/)?", operator()),
    (r"sandbox/deliveries/<int:pk>/(redeliver/)?", operator(pk="delivery.pk")),
    (r"sandbox/stripe/(keys/)?", operator()),
    (r"sandbox/stripe/keys/<int:pk>/revoke/", operator(pk="delivery.pk")),
    (r"sandbox/calendly/(hosts/|subscriptions/|fault/)?", operator()),
    (
        r"sandbox/calendly/(subscriptions/<str:uuid>/(delete|disable)|events/<str:uuid>/cancel"
        r"|invitees/<str:uuid>/no-show)/",
        operator(uuid="=no-such-secret"),
    ),
]


def rule_for(route: str) -> tuple[int, Rule] | None:
    """The first rule whose pattern matches the whole route, with its index."""
    for index, (pattern, rule) in enumerate(RULES):
        if re.fullmatch(pattern, route):
            return index, rule
    return None
