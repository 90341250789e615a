"""A back-office with one page holding personal data, to try the reveal mixin on its
own: the real admin site, views and templates, the User model."""

from django.contrib import admin
from django.urls import include, path

from accounts.models import User
from accounts.reveal import PersonalDataAdminMixin

site = admin.AdminSite(name="reveal_test")


class PeopleAdmin(PersonalDataAdminMixin, admin.ModelAdmin):
    personal_fields = {"email": "email", "name": "name"}
    list_display = ("id", "email", "name")  # no ``fields``: the admin lists them all


site.register(User, PeopleAdmin)

urlpatterns = [
    path("admin/", site.urls),
    path("accounts/", include("accounts.urls")),
]
