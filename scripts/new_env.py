"""Write .env from .env.example with fresh random secrets, unless .env exists."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    target = ROOT / ".env"
    if target.exists():
        print(".env exists; keeping it.")
        return 0
    fresh = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_KEY_ENCRYPTION_KEYS": Fernet.generate_key().decode("ascii"),
    }
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={fresh[name]}" if name in fresh and not line.startswith("#") else line)
    target.write_text("\n".join(lines) + "\n")
    target.chmod(0o600)
    print("Wrote .env with fresh SECRET_KEY and JWT_KEY_ENCRYPTION_KEYS.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
