"""Argon2id with the cost read from settings (OWASP minimum by default)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher


class TunedArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2id whose memory, time and parallelism come from the environment.

    Django's own Argon2 hasher uses 100 MiB and two passes: safe, but a sign-in
    then costs ~80 ms of one core. OWASP's first recommended set (19 MiB, t=2,
    p=1) costs a fifth of that with comparable resistance. Hashes made with
    other parameters still verify, and `must_update` re-hashes them on the
    next successful sign-in. The algorithm name stays `argon2`, so hashes move
    freely between this class and Django's.
    """

    @property
    def memory_cost(self) -> int:  # type: ignore[override]
        return int(settings.ARGON2_MEMORY_COST_KIB)

    @property
    def time_cost(self) -> int:  # type: ignore[override]
        return int(settings.ARGON2_TIME_COST)

    @property
    def parallelism(self) -> int:  # type: ignore[override]
        return int(settings.ARGON2_PARALLELISM)
