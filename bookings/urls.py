from django.urls import path

from bookings import views

app_name = "bookings"

urlpatterns = [
    path("builders/", views.builders, name="builders"),
    path("builders/<slug:slug>/", views.builder, name="builder"),
    path("sessions/<int:pk>/", views.event_type, name="event_type"),
    path("bookings/", views.mine, name="mine"),
    path("bookings/scheduled/", views.scheduled, name="scheduled"),
    path("bookings/<uuid:reference>/", views.detail, name="detail"),
    path("bookings/<uuid:reference>/pay/", views.pay, name="pay"),
    path("bookings/<uuid:reference>/paid/", views.paid, name="paid"),
    path("bookings/<uuid:reference>/cancel/", views.cancel, name="cancel"),
    path("bookings/claim/", views.claim, name="claim"),
    path("builder/bookings/", views.builder_bookings, name="builder_bookings"),
    path(
        "builder/bookings/<uuid:reference>/no-show/",
        views.builder_no_show,
        name="builder_no_show",
    ),
    path("builder/bookings/<uuid:reference>/cancel/", views.builder_cancel, name="builder_cancel"),
]
