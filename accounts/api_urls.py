from django.urls import path

from . import api

urlpatterns = [
    path("api/me/", api.MeView.as_view(), name="me"),
    path("api/accounts/signup/", api.SignupView.as_view(), name="api-signup"),
    path("api/accounts/password/", api.PasswordChangeView.as_view(), name="api-password"),
]
