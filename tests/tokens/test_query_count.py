"""Query budget of the hot paths: one query per authenticated API request, none for JWKS, once warm."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def warm(client: APIClient, path: str) -> None:
    """Load the key ring (and anything else a fresh process reads once)."""
    for _ in range(2):
        client.get(path)


@pytest.mark.parametrize("staff", [False, True], ids=["user", "staff"])
def test_me_with_a_bearer_token_costs_one_query(api_client, user, staff, django_assert_num_queries):
    user.is_staff = staff
    user.save(update_fields=["is_staff"])
    pair = api_client.post(
        "/api/token/", {"email": user.email, "password": "correct horse battery staple"}, format="json"
    ).json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['access']}")
    warm(client, "/api/me/")

    # The login session joined with its user; no key-ring, session or CSRF query.
    with django_assert_num_queries(1):
        response = client.get("/api/me/")
    assert response.status_code == 200
    assert response.json()["email"] == user.email


def test_a_forged_bearer_token_costs_no_query(auth_client, tokens, django_assert_num_queries):
    warm(auth_client, "/api/me/")
    header, payload, signature = tokens["access"].split(".")
    forged = ".".join([header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    with django_assert_num_queries(0):
        response = client.get("/api/me/")
    assert response.status_code == 401


def test_jwks_costs_no_query_once_warm(api_client, django_assert_num_queries):
    warm(api_client, "/.well-known/jwks.json")
    with django_assert_num_queries(0):
        response = api_client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.json()["keys"]


def test_a_revoked_login_session_is_refused_in_one_query(auth_client, tokens, django_assert_num_queries):
    from tokens import services
    from tokens.tokens import AccessToken

    warm(auth_client, "/api/me/")
    services.login_session_revoke(sid=AccessToken(tokens["access"]).sid, reason="logout")
    with django_assert_num_queries(1):
        response = auth_client.get("/api/me/")
    assert response.status_code == 401
    assert response.json()["code"] == "session_revoked"
