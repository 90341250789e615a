"""The client's data-subject request pages, under /accounts/privacy/."""

from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.my_data, name="my_data"),
    path("request/", views.my_data_file, name="my_data_file"),
]
