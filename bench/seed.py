"""Create the benchmark's users (run inside Django by the runner: `python -m bench.seed`).

One hash per hasher is computed and shared by every user of that hasher:
hashing 64 passwords at PBKDF2's cost would take longer than the benchmark.
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=64, help="users per hasher")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import get_hasher

    from .scenarios import PASSWORD, user_email

    user_model = get_user_model()
    hashers = {
        # Django's default Argon2id entry is first in PASSWORD_HASHERS, so
        # these hashes carry the configured cost and are never re-hashed.
        "argon2": get_hasher("argon2"),
        # Django's default PBKDF2 (its own default iteration count).
        "pbkdf2": get_hasher("pbkdf2_sha256"),
    }
    rows = []
    for name, hasher in hashers.items():
        encoded = hasher.encode(PASSWORD, hasher.salt())
        rows += [
            user_model(email=user_email(i, hasher=name), name=f"Bench {name} {i}", password=encoded)
            for i in range(args.users)
        ]
    user_model.objects.bulk_create(rows, ignore_conflicts=True)
    print(f"{len(rows)} benchmark users ready")


if __name__ == "__main__":
    main()
