from django.urls import re_path

from webhooks import views

app_name = "webhooks"

# The optional final slash keeps CommonMiddleware from ever redirecting here.
urlpatterns = [
    re_path(r"^stripe/(?P<token>[^/]+)/?$", views.stripe, name="stripe"),
    re_path(r"^calendly/(?P<token>[^/]+)/?$", views.calendly, name="calendly"),
]
