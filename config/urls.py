from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from config import api_docs, views

admin.site.site_header = "Slotpay back-office"
admin.site.site_title = "Slotpay"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("webhooks/", include("webhooks.urls")),
    path("accounts/", include("accounts.urls")),
    path("api/v1/", include("bookings.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", api_docs.swagger_view, name="api-docs"),
    path("api/redoc/", api_docs.redoc_view, name="api-redoc"),
    path("", include("bookings.urls")),
]

if settings.SANDBOX_MOUNTED:
    urlpatterns += [path("sandbox/", include("sandbox.urls"))]

handler400 = "config.views.bad_request"
handler403 = "config.views.permission_denied"
handler404 = "config.views.page_not_found"
handler500 = "config.views.server_error"
