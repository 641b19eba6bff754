from django.contrib import admin

from .models import LoginSession, OutstandingToken, SigningKey


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    list_display = ("kid", "algorithm", "state", "created_at", "activated_at", "retired_at")
    list_filter = ("state", "algorithm")
    exclude = ("private_key_encrypted",)
    readonly_fields = (
        "kid",
        "algorithm",
        "public_key",
        "state",
        "created_at",
        "activated_at",
        "retired_at",
        "revoked_at",
    )

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(LoginSession)
class LoginSessionAdmin(admin.ModelAdmin):
    list_display = ("sid", "user", "transport", "created_at", "last_used_at", "ip", "revoked_at", "revoke_reason")
    list_select_related = ("user",)
    list_filter = ("transport",)
    raw_id_fields = ("user",)


@admin.register(OutstandingToken)
class OutstandingTokenAdmin(admin.ModelAdmin):
    list_display = ("jti", "user", "login_session", "created_at", "expires_at", "blacklisted_at")
    list_select_related = ("user",)
    raw_id_fields = ("user", "login_session")
