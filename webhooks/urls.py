from django.urls import re_path

from webhooks import views

app_name = "webhooks"

# The optional final slash keeps CommonMiddleware from ever redirecting here. The
# provider is any name: the view answers 404 for one no app registered.
urlpatterns = [
    re_path(r"^(?P<provider>[^/]+)/(?P<token>[^/]+)/?$", views.receive, name="receive"),
]
