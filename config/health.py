"""Probes and the benchmark's ceiling reference."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tokens.keyring import keyring


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers; no database involved."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database answers and a signing key is loaded."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except DatabaseError:
        checks["database"] = "unavailable"
    if checks["database"] == "ok":
        try:
            keyring.current()
            checks["signing_key"] = "ok"
        except Exception:  # noqa: BLE001 - any failure here means "not ready", reported below
            checks["signing_key"] = "unavailable"
    ready = all(v == "ok" for v in checks.values()) and "signing_key" in checks
    response = JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
    if not ready:
        response["Retry-After"] = "5"
    return response


@extend_schema(
    tags=["health"],
    summary="Ping through DRF, no authentication",
    responses={200: inline_serializer("Ping", {"ok": serializers.BooleanField()})},
)
class PingView(APIView):
    """`{"ok": true}` through DRF with no authentication: the benchmark's ceiling."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response({"ok": True})
