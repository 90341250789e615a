from django.urls import include, path

from sandbox import views

app_name = "sandbox"

urlpatterns = [
    path("", views.index, name="index"),
    path("deliveries/", views.deliveries, name="deliveries"),
    path("deliveries/<int:pk>/", views.delivery_detail, name="delivery"),
    path("deliveries/<int:pk>/redeliver/", views.redeliver, name="redeliver"),
    path("reset/", views.reset, name="reset"),
    path("stripe/", include("sandbox.stripe_sandbox.urls")),
    path("calendly/", include("sandbox.calendly_sandbox.urls")),
]
