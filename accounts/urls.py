from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import account, passwords, signup, stepup, views

app_name = "accounts"

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("step-up/", stepup.step_up, name="step_up"),
    path("two-factor/", stepup.two_factor, name="two_factor"),
    path("privacy/", include("accounts.dsr_urls")),
    path("", account.account, name="account"),
    path("profile/", account.profile, name="profile"),
    path("signup/", signup.signup, name="signup"),
    path("signup/done/", signup.signup_done, name="signup_done"),
    path("verify/resend/", signup.verify_resend, name="verify_resend"),
    path("verify/<str:secret>/", signup.verify, name="verify"),
    path("invitation/<str:secret>/", signup.invitation, name="invitation"),
    path("builders/<slug:slug>/invite/", signup.invite_member, name="invite_member"),
    path("password/", passwords.password_change, name="password_change"),
    path("password/reset/", passwords.password_reset, name="password_reset"),
    path(
        "password/reset/<str:secret>/",
        passwords.password_reset_confirm,
        name="password_reset_confirm",
    ),
    path("", include("accounts.session_urls")),
    path("", include("accounts.token_urls")),
]
