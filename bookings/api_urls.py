from django.urls import path

from bookings import api

app_name = "api"

urlpatterns = [
    path("", api.ApiRoot.as_view(), name="root"),
    path("bookings/", api.BookingList.as_view(), name="bookings"),
    path("bookings/<uuid:id>/", api.BookingDetail.as_view(), name="booking"),
    path("bookings/<uuid:id>/cancel/", api.BookingCancel.as_view(), name="booking-cancel"),
    path("event-types/", api.EventTypeList.as_view(), name="event-types"),
]
