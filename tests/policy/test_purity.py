"""The policy engine imports no Django: a snapshot in, a trace out, in a bare interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import datetime as dt, json, sys
import reviews.policy as policy
now = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
author = policy.PersonRef("1", frozenset({"ada"}))
reviewer = policy.PersonRef("2", frozenset({"bob"}))
snapshot = policy.Snapshot(
    head_sha="abc", now=now, author=author, files=(policy.FileChange("a.py"),),
    reviews=(policy.ReviewRef("r1", reviewer, "approved", "abc", now),),
)
trace = policy.evaluate(snapshot, policy.DEFAULT_POLICY)
json.dumps(trace.to_dict())
loaded = sorted(name for name in sys.modules if name == "django" or name.startswith("django."))
print(trace.outcome, loaded)
"""


def test_policy_engine_runs_without_django() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "approved []"
