"""The account's API tokens page (accounts.token_views)."""

from django.urls import path

from accounts import token_views

urlpatterns = [
    path("tokens/", token_views.tokens_page, name="tokens"),
    path("tokens/<int:pk>/revoke/", token_views.token_revoke, name="token_revoke"),
]
