from django.urls import path

from sandbox.stripe_sandbox import api, views

app_name = "sandbox_stripe"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("keys/", views.restricted_key_create, name="restricted-key-create"),
    path("keys/<int:pk>/revoke/", views.restricted_key_revoke, name="restricted-key-revoke"),
    path("checkout/<str:session_id>/", views.checkout, name="checkout"),
    path("receipts/<str:charge_id>/", views.receipt, name="receipt"),
    # The API, at Stripe's paths (no trailing slashes).
    path("v1/checkout/sessions", api.checkout_sessions),
    path("v1/checkout/sessions/<str:id>", api.checkout_session),
    path("v1/checkout/sessions/<str:id>/expire", api.checkout_session_expire),
    path("v1/checkout/sessions/<str:id>/line_items", api.checkout_session_line_items),
    path("v1/payment_intents/<str:id>", api.payment_intent),
    path("v1/charges/<str:id>", api.charge),
    path("v1/refunds", api.refunds),
    path("v1/refunds/<str:id>", api.refund),
    path("v1/customers/<str:id>", api.customer),
    path("v1/disputes/<str:id>", api.dispute),
    path("v1/privacy/redaction_jobs", api.redaction_jobs),
    path("v1/privacy/redaction_jobs/<str:id>", api.redaction_job),
    path("v1/privacy/redaction_jobs/<str:id>/run", api.redaction_job_run),
    path("v1/events", api.events),
    path("v1/events/<str:id>", api.event),
    path("v1/<path:rest>", api.unrecognized),
]
