import pytest

from accounts.serializers import UserSerializer, user_representation

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("staff", [False, True])
def test_me_answers_exactly_what_the_user_serializer_describes(auth_client, user, staff):
    user.is_staff = staff
    user.save()
    response = auth_client.get("/api/me/")
    assert response.status_code == 200
    assert response.json() == UserSerializer(user).data
    assert user_representation(user) == UserSerializer(user).data
    assert response.json()["date_joined"].endswith("Z")


def test_me_with_a_browser_session(client, user):
    client.force_login(user)
    assert client.get("/api/me/").json() == UserSerializer(user).data


def test_me_needs_authentication(api_client):
    response = api_client.get("/api/me/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
