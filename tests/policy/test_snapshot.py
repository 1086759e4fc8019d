"""Snapshots: immutable, hashable, and round-tripped through JSON for the simulate API."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from reviews.policy import FileChange, FrozenDict, PersonRef, ReviewRef, RiskSignalRef, Snapshot, SnapshotError
from tests.policy.builders import ADA, BOB, CY, HEAD, NOW, OLD, commit, paired, review, snapshot


def full_snapshot() -> Snapshot:
    return snapshot(
        labels=["security"],
        files=[FileChange("payments/api.py"), FileChange("ledger/a.py", previous_path="payments/a.py")],
        commits=[commit(ADA, BOB), commit(None, sha=OLD)],
        reviews=[review(CY), review(BOB, "changes_requested", sha=OLD)],
        statuses={"ci/build": "success"},
        diff_ids={OLD: "d1", HEAD: "d1"},
        pairing=[paired(BOB)],
        incident_paths=[RiskSignalRef(("payments/",), "payments-api", NOW, "pagerduty:P1")],
        codeowners="* @cy\n",
        codeowners_syntax="github",
        draft=True,
        last_pushed_at=NOW - dt.timedelta(hours=3),
    )


def test_snapshot_is_hashable_and_frozen() -> None:
    shot = full_snapshot()
    assert hash(shot) == hash(full_snapshot())
    assert isinstance(shot.files, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        shot.draft = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        shot.statuses["ci/build"] = "failure"  # type: ignore[index]


def test_json_round_trip() -> None:
    shot = full_snapshot()
    data = json.loads(json.dumps(shot.to_dict()))
    assert Snapshot.from_dict(data) == shot
    assert data["reviews"][0]["submitted_at"] == "2024-05-01T11:00:00+00:00"
    assert data["author"]["names"] == ["ada", "ada@example.com"]


def test_person_names_and_teams_are_lower_cased() -> None:
    person = PersonRef("1", frozenset({"Ada", "ADA@Example.com"}), teams=frozenset({"Payments"}))
    assert person.names == {"ada", "ada@example.com"}
    assert person.teams == {"payments"}
    assert person.label == "ada"
    assert PersonRef("2", display_name="Grace Hopper").label == "Grace Hopper"
    assert PersonRef("3").label == "3"


def test_frozen_dict_compares_like_a_dict() -> None:
    assert FrozenDict({"a": "1"}) == {"a": "1"}
    assert FrozenDict([("a", "1")]) == FrozenDict({"a": "1"})
    assert FrozenDict({"a": "1"}).get("b") is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"now": "2024-05-01T12:00:00+00:00"}, "head_sha"),
        ({"head_sha": "x", "now": "2024-05-01T12:00:00"}, "snapshot: now must be a timezone-aware datetime"),
        ({"head_sha": "x", "now": "yesterday"}, "snapshot.now: expected an ISO 8601 date and time"),
        ({"head_sha": "x", "now": "2024-05-01T12:00:00Z", "colour": "red"}, "unknown field(s) colour"),
        (
            {"head_sha": "x", "now": "2024-05-01T12:00:00Z", "statuses": {"ci": "green"}},
            "state of status 'ci' must be one of success, pending, failure, error",
        ),
        (
            {
                "head_sha": "x",
                "now": "2024-05-01T12:00:00Z",
                "reviews": [
                    {
                        "id": "1",
                        "reviewer": {"id": "p"},
                        "state": "lgtm",
                        "commit_sha": "x",
                        "submitted_at": "2024-05-01T12:00:00Z",
                    }
                ],
            },
            "snapshot.reviews[0]: review state must be one of",
        ),
        ({"head_sha": "x", "now": "2024-05-01T12:00:00Z", "author": {"id": "p", "names": "ada"}}, "snapshot.author"),
        ({"head_sha": "x", "now": "2024-05-01T12:00:00Z", "files": {"path": "a"}}, "snapshot.files: expected a list"),
        ({"head_sha": "x", "now": "2024-05-01T12:00:00Z", "changed_lines": -3}, "changed_lines"),
        ({"head_sha": "x", "now": "2024-05-01T12:00:00Z", "codeowners_syntax": "svn"}, "codeowners_syntax"),
        ({"head_sha": "x", "now": "2024-05-01T12:00:00Z", "last_pushed_at": "soon"}, "snapshot.last_pushed_at"),
        ([], "snapshot: expected an object"),
    ],
)
def test_bad_snapshot_json_names_the_field(data: object, message: str) -> None:
    with pytest.raises(SnapshotError) as caught:
        Snapshot.from_dict(data)
    assert message in str(caught.value)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(SnapshotError, match="timezone-aware"):
        ReviewRef("1", ADA, "approved", HEAD, dt.datetime(2024, 5, 1))  # noqa: DTZ001
