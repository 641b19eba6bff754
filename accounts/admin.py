"""Admin for staff over accounts: search, filters, the account's login sessions, and revoking them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm, UserCreationForm
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from tokens import services as token_services
from tokens.admin import LargeTablePaginator, login_session_status
from tokens.models import LoginSession

from .models import User, email_normalize

# The inline shows the most recent sessions only: an account driven by a
# script can hold thousands, and the full list is one click away.
INLINE_SESSIONS = 20


class UserCreateForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = ("email", "name")


class LoginSessionInline(admin.TabularInline):
    """The account's most recent login sessions, read-only; revoke them with the list action."""

    model = LoginSession
    fields = ("session", "transport", "created_at", "last_used_at", "ip", "user_agent", "status")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = f"login sessions (the {INLINE_SESSIONS} most recent)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[LoginSession]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        object_id = match.kwargs.get("object_id") if match else None
        if object_id is None:
            return queryset.none()
        # A formset cannot filter a sliced queryset, so slice in a subquery.
        recent = LoginSession.objects.filter(user_id=object_id).order_by("-last_used_at").values("pk")
        return queryset.filter(pk__in=recent[:INLINE_SESSIONS]).order_by("-last_used_at")

    @admin.display(description="sid")
    def session(self, obj: LoginSession) -> str:
        url = reverse("admin:tokens_loginsession_change", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.pk)

    @admin.display(description="status")
    def status(self, obj: LoginSession) -> str:
        return login_session_status(obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreateForm
    ordering = ("email",)
    list_display = ("email", "name", "is_staff", "is_active", "date_joined", "last_login", "sessions_link")
    list_filter = ("is_staff", "is_active", "is_superuser")
    search_fields = ("email", "name")
    search_help_text = "An exact email address, or part of an address or name."
    readonly_fields = ("date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "name", "password1", "password2")}),)
    inlines = (LoginSessionInline,)
    actions = ("revoke_login_sessions",)
    paginator = LargeTablePaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return self.inlines if obj is not None else ()

    @admin.display(description="login sessions")
    def sessions_link(self, obj: User) -> str:
        url = reverse("admin:tokens_loginsession_changelist")
        return format_html('<a href="{}?{}">sessions</a>', url, urlencode({"q": obj.email}))

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[User], search_term: str) -> Any:
        if "@" in search_term and " " not in search_term.strip():
            # A whole address hits the unique index instead of a LIKE scan.
            exact = queryset.filter(email=email_normalize(search_term))
            if exact.exists():
                return exact, False
        return super().get_search_results(request, queryset, search_term)

    @admin.action(description="Revoke all login sessions of selected users", permissions=["change"])
    def revoke_login_sessions(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        if not self.has_change_permission(request):
            raise PermissionDenied
        count = token_services.login_sessions_revoke(
            queryset=LoginSession.objects.filter(user_id__in=queryset.values("pk")),
            reason=LoginSession.RevokeReason.ADMIN,
            actor_id=request.user.pk,
        )
        self.message_user(request, f"Revoked {count} login session(s); their refresh tokens are blacklisted.")
