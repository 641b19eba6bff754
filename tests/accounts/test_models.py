import pytest
from django.db import IntegrityError, transaction

from accounts.models import User

pytestmark = pytest.mark.django_db


def test_create_user_normalises_email_and_hashes_password():
    user = User.objects.create_user(email="  Ada@Example.COM ", password="correct horse battery staple")
    assert user.email == "ada@example.com"
    assert user.password.startswith("argon2$argon2id$")
    assert user.check_password("correct horse battery staple")
    assert not user.is_staff and not user.is_superuser and user.is_active


def test_email_is_unique_regardless_of_case():
    User.objects.create_user(email="ada@example.com", password="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user(email="ADA@example.com", password="x")


def test_database_refuses_a_mixed_case_email_that_bypassed_normalisation():
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.bulk_create([User(email="Mixed@Example.com")])


def test_lookup_by_natural_key_ignores_case():
    user = User.objects.create_user(email="ada@example.com", password="x")
    assert User.objects.get_by_natural_key("ADA@EXAMPLE.COM") == user


def test_create_superuser_sets_flags():
    admin = User.objects.create_superuser(email="root@example.com", password="x")
    assert admin.is_staff and admin.is_superuser


def test_create_superuser_refuses_non_staff():
    with pytest.raises(ValueError, match="is_staff"):
        User.objects.create_superuser(email="root@example.com", password="x", is_staff=False)


def test_email_required():
    with pytest.raises(ValueError, match="email"):
        User.objects.create_user(email="", password="x")


def test_createsuperuser_command_works_with_email(monkeypatch):
    from django.core.management import call_command

    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "correct horse battery staple")
    call_command("createsuperuser", "--no-input", "--email", "Boss@Example.com", "--name", "Boss")
    boss = User.objects.get(email="boss@example.com")
    assert boss.is_superuser and boss.check_password("correct horse battery staple")


def test_names():
    user = User(email="ada@example.com", name="Ada")
    assert user.get_full_name() == "Ada" and str(user) == "ada@example.com"
    assert User(email="x@example.com").get_short_name() == "x@example.com"
