"""Django admin for staff: login sessions, refresh tokens, signing keys and the audit trail.

Built for tables of a million rows: no COUNT(*) over a whole table on each
page (see LargeTablePaginator), searches that hit an index (exact email, sid,
jti or address instead of a LIKE over a joined column), status computed from
columns, and only indexed columns sortable. Nothing here revokes or rotates
by itself: every action calls the service that does it for the API and the
commands, which also writes the audit trail. No page shows a token or any
private key material: neither is stored in a readable form.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import uuid
from typing import Any, ClassVar

from cryptography.hazmat.primitives import serialization
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from . import clock, conf, keys, services
from .exceptions import SigningKeyError
from .models import AuthEvent, BlacklistedToken, LoginSession, OutstandingToken, SigningKey
from .signing_keys import signing_key_revoke, signing_key_rotate

# -- paging and searching at scale ----------------------------------------------


class LargeTablePaginator(Paginator):
    """A paginator that never counts a huge table.

    Unfiltered, on PostgreSQL, the count is the planner's estimate
    (pg_class.reltuples, kept fresh by autovacuum); filtered, it counts at most
    COUNT_LIMIT + 1 rows. `count_note` says which ("about", "more than") so the
    page can say so. Pages past the estimate are allowed and may be empty.
    """

    COUNT_LIMIT = 10_000
    count_note = ""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        if not queryset.query.where and not queryset.query.distinct:
            estimate = _table_estimate(queryset)
            if estimate is not None and estimate > self.COUNT_LIMIT:
                self.count_note = "about"
                return estimate
        counted = queryset.order_by()[: self.COUNT_LIMIT + 1].count()
        if counted > self.COUNT_LIMIT:
            self.count_note = "more than"
            return self.COUNT_LIMIT
        return counted

    @property
    def count_is_exact(self) -> bool:
        return self.count >= 0 and not self.count_note  # reading count sets count_note

    def validate_number(self, number: Any) -> int:
        if not self.count_is_exact:
            # The count is not exact: let any page be asked for.
            try:
                value = int(number)
            except (TypeError, ValueError) as e:
                raise PageNotAnInteger("That page number is not an integer.") from e
            if value < 1:
                raise EmptyPage("That page number is less than 1.")
            return value
        return super().validate_number(number)

    def page(self, number: Any) -> Page:
        if self.count_is_exact:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        return Page(self.object_list[bottom : bottom + self.per_page], number, self)


def _table_estimate(queryset: QuerySet[Any]) -> int | None:
    """Return the planner's row estimate of a queryset's table on PostgreSQL, else None."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connection.ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    # -1 (never analysed) or 0: fall back to a bounded count.
    return int(row[0]) if row and row[0] and row[0] > 0 else None


def search_term_parse(term: str) -> tuple[str, Any]:
    """Classify an admin search term as ("uuid", UUID), ("email", str), ("ip", str) or ("text", str)."""
    term = term.strip()
    try:
        return "uuid", uuid.UUID(term)
    except ValueError:
        pass
    if "@" in term:
        # Addresses are stored lower case (accounts.models.email_normalize).
        return "email", term.lower()
    try:
        return "ip", str(ipaddress.ip_address(term))
    except ValueError:
        return "text", term


def user_id_by_email(email: str) -> Any:
    """Return the pk of the user with this (normalised) address, or None."""
    return get_user_model().objects.filter(email=email).values_list("pk", flat=True).first()


class ScaleAdminMixin:
    """Changelist settings shared by every admin over a large table."""

    paginator: ClassVar[type] = LargeTablePaginator
    show_full_result_count = False
    # Facet counts are one COUNT per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50


class ReadOnlyFieldsMixin:
    """Every field read-only and no save buttons: rows change only through services."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        declared = list(getattr(self, "readonly_fields", ()))
        fields = [f.name for f in self.model._meta.concrete_fields if f.name not in declared]  # type: ignore[attr-defined]
        return [*fields, *declared]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting a session or token row would skip the revocation services.
        return False


def _require_change(model_admin: admin.ModelAdmin, request: HttpRequest) -> None:
    # Django already hides actions the user lacks permission for; this guards
    # the service call itself in case an action is reached another way.
    if not model_admin.has_change_permission(request):
        raise PermissionDenied


def _user_link(user_id: Any, label: Any) -> str:
    url = reverse(
        f"admin:{get_user_model()._meta.app_label}_{get_user_model()._meta.model_name}_change", args=[user_id]
    )
    return format_html('<a href="{}">{}</a>', url, label)


# -- login sessions --------------------------------------------------------------


class LoginSessionStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "live"), ("revoked", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "live":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


def login_session_status(obj: LoginSession) -> str:
    if obj.revoked_at is None:
        return "live"
    return f"revoked ({obj.get_revoke_reason_display() or 'no reason'})"


@admin.register(LoginSession)
class LoginSessionAdmin(ScaleAdminMixin, ReadOnlyFieldsMixin, admin.ModelAdmin):
    list_display = ("sid", "user_email", "transport", "created_at", "last_used_at", "ip", "agent", "status")
    list_display_links = ("sid",)
    list_select_related = ("user",)
    list_filter = (LoginSessionStatusFilter, "transport", "revoke_reason")
    # Only indexed columns: sorting a million rows by anything else is a full sort.
    sortable_by = ("last_used_at",)
    search_fields = ("user__email",)
    search_help_text = "An exact email address, a sid (UUID) or an IP address."
    actions = ("revoke_selected",)
    readonly_fields = ("status",)
    exclude = ("session_key",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The Django session key is a bearer secret for the browser: never shown.
        return [f for f in super().get_readonly_fields(request, obj) if f != "session_key"]

    @admin.display(description="user")
    def user_email(self, obj: LoginSession) -> str:
        return _user_link(obj.user_id, obj.user.email)

    @admin.display(description="user agent")
    def agent(self, obj: LoginSession) -> str:
        return obj.user_agent if len(obj.user_agent) <= 60 else obj.user_agent[:59] + "…"

    @admin.display(description="status")
    def status(self, obj: LoginSession) -> str:
        return login_session_status(obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[LoginSession], search_term: str
    ) -> tuple[QuerySet[LoginSession], bool]:
        if not search_term.strip():
            return queryset, False
        kind, value = search_term_parse(search_term)
        if kind == "uuid":
            return queryset.filter(sid=value), False
        if kind == "email":
            return queryset.filter(user_id=user_id_by_email(value)), False
        if kind == "ip":
            return queryset.filter(ip=value), False
        return queryset.none(), False

    @admin.action(description="Revoke selected login sessions", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[LoginSession]) -> None:
        _require_change(self, request)
        count = services.login_sessions_revoke(
            queryset=queryset, reason=LoginSession.RevokeReason.ADMIN, actor_id=request.user.pk
        )
        self.message_user(request, f"Revoked {count} login session(s); their refresh tokens are blacklisted.")


# -- outstanding and blacklisted tokens --------------------------------------------


class TokenStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "active"), ("blacklisted", "blacklisted"), ("expired", "expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = clock.now()
        if self.value() == "active":
            return queryset.filter(blacklisted_at__isnull=True, expires_at__gt=now)
        if self.value() == "blacklisted":
            return queryset.filter(blacklisted_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(blacklisted_at__isnull=True, expires_at__lte=now)
        return queryset


def outstanding_token_status(obj: OutstandingToken, now: Any = None) -> str:
    """Return active, blacklisted (reason) or expired, from the row's own columns."""
    if obj.blacklisted_at is not None:
        return f"blacklisted ({obj.get_blacklist_reason_display() or 'no reason'})"
    if obj.expires_at <= (now or clock.now()):
        return "expired"
    return "active"


class TokenAdminBase(ScaleAdminMixin, ReadOnlyFieldsMixin, admin.ModelAdmin):
    list_display = ("jti", "user_email", "sid", "created_at", "expires_at", "status")
    list_display_links = ("jti",)
    # The user only: the sid is on the row itself, no join with sessions needed.
    list_select_related = ("user",)
    sortable_by = ("created_at",)
    search_fields = ("user__email",)
    search_help_text = "An exact email address, or a jti or sid (UUID)."
    readonly_fields = ("status",)

    @admin.display(description="user")
    def user_email(self, obj: OutstandingToken) -> str:
        return _user_link(obj.user_id, obj.user.email)

    @admin.display(description="sid")
    def sid(self, obj: OutstandingToken) -> str:
        url = reverse("admin:tokens_loginsession_change", args=[obj.login_session_id])
        return format_html('<a href="{}">{}</a>', url, obj.login_session_id)

    @admin.display(description="status")
    def status(self, obj: OutstandingToken) -> str:
        return outstanding_token_status(obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if not search_term.strip():
            return queryset, False
        kind, value = search_term_parse(search_term)
        if kind == "uuid":
            return queryset.filter(Q(jti=value) | Q(login_session_id=value)), False
        if kind == "email":
            return queryset.filter(user_id=user_id_by_email(value)), False
        return queryset.none(), False


@admin.register(OutstandingToken)
class OutstandingTokenAdmin(TokenAdminBase):
    list_filter = (TokenStatusFilter, "blacklist_reason")
    actions = ("blacklist_selected",)

    @admin.action(description="Blacklist selected refresh tokens", permissions=["change"])
    def blacklist_selected(self, request: HttpRequest, queryset: QuerySet[OutstandingToken]) -> None:
        _require_change(self, request)
        count = services.outstanding_tokens_blacklist(queryset=queryset, actor_id=request.user.pk)
        self.message_user(
            request, f"Blacklisted {count} refresh token(s); using one now revokes its whole login session."
        )


@admin.register(BlacklistedToken)
class BlacklistedTokenAdmin(TokenAdminBase):
    """Read-only: a blacklisting is undone by nobody, and deleting a row would not undo it either."""

    list_display = ("jti", "user_email", "sid", "created_at", "blacklisted_at", "blacklist_reason")
    list_filter = ("blacklist_reason",)
    sortable_by = ("blacklisted_at",)
    actions = None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# -- signing keys ------------------------------------------------------------------


def public_key_fingerprint(pem: str) -> str:
    """Return the OpenSSH-style SHA-256 fingerprint of a public key's SubjectPublicKeyInfo."""
    try:
        der = keys.public_key_load_pem(pem).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except ValueError:
        return "unreadable public key"
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode("ascii").rstrip("=")


class RotateForm(forms.Form):
    algorithm = forms.ChoiceField(choices=[(a, a) for a in keys.ALGORITHMS], help_text="Algorithm of the new next key.")
    force = forms.BooleanField(
        required=False,
        help_text="Promote even if the next key was published less than JWT_JWKS_MAX_AGE ago. "
        "Resource servers that cached the old JWKS will refuse its tokens until they refetch it.",
    )


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyFieldsMixin, admin.ModelAdmin):
    list_display = ("kid", "algorithm", "state", "created_at", "activated_at", "retired_at", "fingerprint")
    list_filter = ("state", "algorithm")
    fields = (
        "kid",
        "algorithm",
        "state",
        "created_at",
        "activated_at",
        "retired_at",
        "revoked_at",
        "fingerprint",
        "public_key",
    )
    readonly_fields = ("fingerprint",)
    actions = ("revoke_selected",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[SigningKey]:
        # The encrypted private key is never even read by the admin.
        return super().get_queryset(request).defer("private_key_encrypted")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [
            f for f in super().get_readonly_fields(request, obj) if f not in ("private_key_encrypted", "updated_at")
        ]

    @admin.display(description="fingerprint")
    def fingerprint(self, obj: SigningKey) -> str:
        return public_key_fingerprint(obj.public_key)

    def get_urls(self) -> list[URLPattern]:
        rotate = path("rotate/", self.admin_site.admin_view(self.rotate_view), name="tokens_signingkey_rotate")
        return [rotate, *super().get_urls()]

    def rotate_view(self, request: HttpRequest) -> HttpResponse:
        """Confirm, then rotate the keys exactly as `rotate_signing_key` does (same safety check)."""
        _require_change(self, request)
        changelist = reverse("admin:tokens_signingkey_changelist")
        form = RotateForm(request.POST or None, initial={"algorithm": conf.algorithm()})
        if request.method == "POST" and form.is_valid():
            try:
                result = signing_key_rotate(
                    algorithm=form.cleaned_data["algorithm"], force=form.cleaned_data["force"], actor_id=request.user.pk
                )
            except SigningKeyError as e:
                self.message_user(request, f"Not rotated: {e}", messages.ERROR)
            else:
                self.message_user(
                    request, f"Rotated: {result.current.kid} now signs; {result.next.kid} is the new next key."
                )
                return HttpResponseRedirect(changelist)
        states = {
            k.state: k
            for k in self.get_queryset(request).filter(state__in=[SigningKey.State.CURRENT, SigningKey.State.NEXT])
        }
        upcoming = states.get(SigningKey.State.NEXT)
        age = int((clock.now() - upcoming.created_at).total_seconds()) if upcoming else None
        context = {
            **self.admin_site.each_context(request),
            "title": "Rotate signing keys",
            "opts": self.model._meta,
            "form": form,
            "current": states.get(SigningKey.State.CURRENT),
            "next": upcoming,
            "next_age": age,
            "max_age": conf.jwks_max_age(),
            "too_young": upcoming is None or (age is not None and age < conf.jwks_max_age()),
        }
        return TemplateResponse(request, "admin/tokens/signingkey/rotate_confirmation.html", context)

    @admin.action(description="Revoke selected signing keys…", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[SigningKey]) -> HttpResponse | None:
        """Show what revoking means and ask again; revoke on the confirming POST."""
        _require_change(self, request)
        if request.POST.get("post") == "yes":
            revoked = []
            for key in queryset:
                try:
                    revoked.append(signing_key_revoke(kid=key.kid, actor_id=request.user.pk).kid)
                except SigningKeyError as e:
                    self.message_user(request, f"Not revoked: {e}", messages.ERROR)
            if revoked:
                self.message_user(request, f"Revoked {len(revoked)} signing key(s): {', '.join(revoked)}.")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Revoke signing keys",
            "opts": self.model._meta,
            "keys": list(queryset),
            "includes_current": queryset.filter(state=SigningKey.State.CURRENT).exists(),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/tokens/signingkey/revoke_confirmation.html", context)


# -- audit trail -------------------------------------------------------------------


@admin.register(AuthEvent)
class AuthEventAdmin(ScaleAdminMixin, ReadOnlyFieldsMixin, admin.ModelAdmin):
    list_display = ("created_at", "kind", "user_email", "actor_email", "email", "sid", "ip")
    list_select_related = ("user", "actor")
    list_filter = ("kind",)
    sortable_by = ("created_at",)
    search_fields = ("email",)
    search_help_text = "An exact email address (account or typed at sign-in), a sid (UUID) or an IP address."
    actions = None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="user")
    def user_email(self, obj: AuthEvent) -> str:
        return obj.user.email if obj.user else "-"

    @admin.display(description="by")
    def actor_email(self, obj: AuthEvent) -> str:
        return obj.actor.email if obj.actor else "-"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AuthEvent], search_term: str
    ) -> tuple[QuerySet[AuthEvent], bool]:
        if not search_term.strip():
            return queryset, False
        kind, value = search_term_parse(search_term)
        if kind == "uuid":
            return queryset.filter(sid=value), False
        if kind == "email":
            user_id = user_id_by_email(value)
            match = Q(email=value) | Q(user_id=user_id) if user_id is not None else Q(email=value)
            return queryset.filter(match), False
        if kind == "ip":
            return queryset.filter(ip=value), False
        return queryset.none(), False
