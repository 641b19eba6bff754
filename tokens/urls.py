from django.urls import path

from . import api

app_name = "tokens"

urlpatterns = [
    path("api/token/", api.TokenObtainView.as_view(), name="obtain"),
    path("api/token/refresh/", api.TokenRefreshView.as_view(), name="refresh"),
    path("api/token/verify/", api.TokenVerifyView.as_view(), name="verify"),
    path("api/token/session/", api.TokenFromSessionView.as_view(), name="from-session"),
    path("api/token/logout/", api.LogoutView.as_view(), name="logout"),
    path("api/token/logout/all/", api.LogoutAllView.as_view(), name="logout-all"),
    path("api/sessions/", api.SessionListView.as_view(), name="sessions"),
    path("api/sessions/<uuid:sid>/", api.SessionDetailView.as_view(), name="session-detail"),
    path(".well-known/jwks.json", api.jwks_view, name="jwks"),
]
