from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import stepup
from accounts.forms import ClientAuthenticationForm

app_name = "accounts"

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="accounts/login.html",
            authentication_form=ClientAuthenticationForm,
            redirect_authenticated_user=True,
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("step-up/", stepup.step_up, name="step_up"),
    path("two-factor/", stepup.two_factor, name="two_factor"),
    path("privacy/", include("accounts.dsr_urls")),
]
