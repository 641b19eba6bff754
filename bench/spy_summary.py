"""Summarise py-spy raw (collapsed) stacks: `python -m bench.spy_summary FILE... [--top N]`.

Prints, for all files together, the share of samples spent in each leaf
function ("self") and under a few landmarks of a request ("inclusive").
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# Landmarks: a label and a pattern matched against each frame of a stack
# (a label starting with "leaf:" against the innermost frame only).
LANDMARKS = [
    ("leaf: idle, waiting for a connection", r"^(select|accept|wait) \((selectors|socket|gunicorn)"),
    ("gunicorn: send the response, close the connection", r"^(write|close_graceful|sendall) \("),
    ("Django request handling (WSGIHandler)", r"WSGIHandler\.__call__"),
    ("middleware before/after the view", r"process_(request|response) \("),
    ("DRF authentication", r"perform_authentication \(rest_framework"),
    ("JWT verification", r"KeyRingBackend\.decode|decode \(tokens/backends"),
    ("JWT signing", r"encode \(tokens/backends"),
    ("ORM: building SQL", r"as_sql \(django/db/models/sql"),
    ("database round trips (psycopg send + wait)", r"(wait|_execute_send|_exec_command) \(psycopg"),
    ("transaction commit", r"commit \(django/db/backends"),
    ("serializer", r"to_representation \(rest_framework"),
    ("audit log line", r"auth_event_record \(tokens/audit"),
    ("password hashing", r"(argon2|pbkdf2|hashlib)"),
]


def frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)".
    return re.sub(r":\d+\)$", ")", frame.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    leaves: Counter[str] = Counter()
    marks: Counter[str] = Counter()
    total = 0
    compiled = [(label, re.compile(p)) for label, p in LANDMARKS]
    for name in args.files:
        for line in Path(name).read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            frames = [frame_name(f) for f in stack.split(";")]
            leaves[_short(frames[-1])] += count
            for label, pattern in compiled:
                if label.startswith("leaf:") or label.startswith("gunicorn: send"):
                    if pattern.search(_short(frames[-1])):
                        marks[label] += count
                elif any(pattern.search(f) for f in frames):
                    marks[label] += count
    print(f"{total} samples")
    print("inclusive:")
    for label, _ in LANDMARKS:
        print(f"  {marks[label] / total * 100:5.1f}%  {label}")
    print("self (leaf frames):")
    for leaf, count in leaves.most_common(args.top):
        print(f"  {count / total * 100:5.1f}%  {leaf}")


def _short(frame: str) -> str:
    return re.sub(r"\(.*site-packages/", "(", frame)


if __name__ == "__main__":
    main()
