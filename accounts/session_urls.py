"""Sessions: the page a session that ended leads to, the link back, sign out everywhere."""

from django.urls import path

from accounts import recovery, sessions

urlpatterns = [
    path("session/ended/", recovery.session_ended, name="session_ended"),
    path("session/recover/", recovery.recover, name="recover"),
    path("session/recover/<str:secret>/", recovery.recover_follow, name="recover_follow"),
    path(
        "session/sign-out-everywhere/",
        sessions.sign_out_everywhere,
        name="sign_out_everywhere",
    ),
]
