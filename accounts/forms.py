"""The forms of the account pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm, SetPasswordForm

from .models import User, email_normalize


class EmailAuthenticationForm(AuthenticationForm):
    """Django's sign-in form, with the login field presented as an email address."""

    username = forms.EmailField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        # Emails are compared case-insensitively, so Django's "both fields may
        # be case-sensitive" would mislead.
        "invalid_login": "That email and password don't match an account. Check them and try again.",
    }


class SignupForm(forms.Form):
    """Create an account: email, an optional name, and a password typed twice.

    Django's password validators run here, so that their messages show next
    to the password together with any other error; accounts.services.user_create
    runs them again (and owns the email's uniqueness) when the view calls it.
    """

    email = forms.EmailField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )
    name = forms.CharField(
        label="Name",
        max_length=150,
        required=False,
        help_text="How we greet you.",
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Confirm password",
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_password2(self) -> str:
        password1 = self.cleaned_data.get("password1")
        password2: str = self.cleaned_data["password2"]
        if password1 and password1 != password2:
            raise forms.ValidationError("The two passwords do not match.", code="password_mismatch")
        return password2

    def clean(self) -> dict[str, Any]:
        cleaned_data = super().clean() or {}
        password = self.cleaned_data.get("password1")
        if password:
            email = email_normalize(self.cleaned_data.get("email") or "")
            candidate = User(email=email, name=self.cleaned_data.get("name") or "")
            try:
                password_validation.validate_password(password, user=candidate)
            except forms.ValidationError as e:
                self.add_error("password1", e)
        return cleaned_data

    def service_arguments(self) -> dict[str, Any]:
        """Return the keyword arguments of accounts.services.user_create."""
        return {
            "email": self.cleaned_data["email"],
            "password": self.cleaned_data["password1"],
            "name": self.cleaned_data.get("name", ""),
        }


class NewPasswordErrorsMixin:
    """Show the password validators' messages under the new password, not under its confirmation."""

    cleaned_data: dict[str, Any]

    def validate_password_for_user(self, user: Any, password_field_name: str = "password2") -> None:  # noqa: S107
        # Django checks the confirmation once both fields match; the person
        # reads the complaint where they typed the password first.
        if password_field_name == "new_password2" and self.cleaned_data.get("new_password2"):
            password_field_name = "new_password1"
        super().validate_password_for_user(user, password_field_name)  # type: ignore[misc]


class AccountSetPasswordForm(NewPasswordErrorsMixin, SetPasswordForm):
    """Django's set-password form (password reset), with the errors where they belong."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["new_password2"].label = "Confirm new password"
        self.fields["new_password2"].help_text = ""


class AccountPasswordChangeForm(NewPasswordErrorsMixin, PasswordChangeForm):
    """Django's password change form, with the errors where they belong."""

    error_messages = {
        **PasswordChangeForm.error_messages,
        "password_incorrect": "That is not your current password. Please enter it again.",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["old_password"].label = "Current password"
        self.fields["new_password2"].label = "Confirm new password"
        self.fields["new_password2"].help_text = ""
