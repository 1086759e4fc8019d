"""GitHub webhook payloads → records (reviews.integrations.github), on GitHub's documented payloads.

The fixtures are @octokit/webhooks-examples payloads, made consistent (one repository, one pull request story) and
checked against the @octokit/openapi-webhooks schemas. No Django, no database.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reviews.integrations.bots import is_bot
from reviews.integrations.github import parse_webhook, verify_signature
from reviews.integrations.records import (
    GitUserRecord,
    PayloadError,
    RepositoryRecord,
    UserRecord,
    WebhookEvent,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"
ALL_FIXTURES = sorted(path.name for path in FIXTURES.glob("*.json"))
UTC = dt.UTC
HEAD_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
REPOSITORY = RepositoryRecord(
    provider="github",
    external_id="186853002",
    full_path="Codertocat/Hello-World",
    default_branch="master",
    web_url="https://github.com/Codertocat/Hello-World",
)


def load(name: str) -> tuple[str, dict[str, Any]]:
    """The event name (the file name's first part, as X-GitHub-Event) and the payload."""
    return name.split(".")[0], json.loads((FIXTURES / name).read_text())


def parse(name: str) -> WebhookEvent:
    return parse_webhook(*load(name))


def at(hour: int, minute: int, second: int, day: int = 15) -> dt.datetime:
    return dt.datetime(2019, 5, day, hour, minute, second, tzinfo=UTC)


def user(login: str, external_id: str, *, is_bot: bool = False) -> UserRecord:
    return UserRecord(provider="github", login=login, external_id=external_id, is_bot=is_bot)


CODERTOCAT = user("Codertocat", "21031067")
OCTOCAT = user("octocat", "5346")


def datetimes(value: Any) -> Iterator[dt.datetime]:
    if isinstance(value, dt.datetime):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from datetimes(getattr(value, item.name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from datetimes(item)


# --- every fixture -------------------------------------------------------------------------------------------------


def test_fixtures_cover_the_events_tandem_handles() -> None:
    expected = {
        "pull_request.opened.json",
        "pull_request.opened.bot.json",
        "pull_request.edited.json",
        "pull_request.synchronize.json",
        "pull_request.closed.merged.json",
        "pull_request.closed.json",
        "pull_request.reopened.json",
        "pull_request.ready_for_review.json",
        "pull_request.converted_to_draft.json",
        "pull_request.labeled.json",
        "pull_request.unlabeled.json",
        "pull_request.review_requested.json",
        "pull_request.review_request_removed.json",
        "pull_request.assigned.json",
        "pull_request_review.submitted.approved.json",
        "pull_request_review.submitted.changes_requested.json",
        "pull_request_review.submitted.commented.json",
        "pull_request_review.edited.json",
        "pull_request_review.dismissed.json",
        "pull_request_review_comment.created.json",
        "issue_comment.created.json",
        "push.json",
        "status.json",
        "check_run.completed.json",
        "check_suite.completed.json",
        "deployment.created.json",
        "deployment_status.success.json",
        "ping.json",
        "star.created.json",
    }
    assert expected <= set(ALL_FIXTURES)


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_fixture_parses_into_github_records(name: str) -> None:
    event_name, payload = load(name)

    event = parse_webhook(event_name, payload)

    assert event.provider == "github"
    assert event.event == event_name
    assert event.action == payload.get("action", "")
    if event_name not in ("ping", "star"):
        assert event.repository == REPOSITORY
        assert not event.ignored


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_timestamp_is_timezone_aware_utc(name: str) -> None:
    for moment in datetimes(parse(name)):
        assert moment.utcoffset() == dt.timedelta(0)
        assert moment.tzinfo == UTC


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_fixture_names_the_repository_consistently(name: str) -> None:
    _, payload = load(name)

    assert payload["repository"]["id"] == 186853002
    assert payload["repository"]["full_name"] == "Codertocat/Hello-World"


# --- pull_request ------------------------------------------------------------------------------------------------


def test_opened_pull_request_becomes_a_full_record() -> None:
    event = parse("pull_request.opened.json")

    pull = event.pull_request
    assert pull is not None
    assert event.action == "opened"
    assert event.pull_request_number == 2
    assert event.sender == CODERTOCAT
    assert pull.repository == REPOSITORY
    assert pull.number == 2
    assert pull.external_id == "279147437"
    assert pull.title == "Update the README with new information."
    assert pull.body == "This is a pretty simple change that we need to pull into master."
    assert pull.author == CODERTOCAT
    assert pull.state == "open"
    assert pull.draft is False
    assert pull.created_at == at(15, 20, 33)
    assert pull.updated_at == at(15, 20, 33)
    assert pull.base_ref == "master"
    assert pull.head_ref == "changes"
    assert pull.head_sha == HEAD_SHA
    assert pull.merge_commit_sha == ""
    assert (pull.additions, pull.deletions, pull.changed_files) == (1, 1, 1)
    assert pull.labels == ("bug",)
    assert pull.requested_reviewers == (OCTOCAT,)
    assert pull.web_url == "https://github.com/Codertocat/Hello-World/pull/2"
    assert pull.merged_at is None
    assert pull.closed_at is None
    assert pull.merged_by is None
    assert pull.ready_at is None
    assert pull.pushed_at is None


def test_edited_pull_request_carries_the_new_title() -> None:
    event = parse("pull_request.edited.json")

    assert event.action == "edited"
    assert event.pull_request is not None
    assert event.pull_request.title == "Update the README with new information."
    assert event.pull_request.updated_at == at(15, 20, 34)


def test_closed_and_merged_pull_request_is_merged() -> None:
    pull = parse("pull_request.closed.merged.json").pull_request

    assert pull is not None
    assert pull.state == "merged"
    assert pull.merged_at == at(15, 30, 0)
    assert pull.closed_at == at(15, 30, 0)
    assert pull.merged_by == OCTOCAT
    assert pull.merge_commit_sha == "c4295bd74fb0f4fda03689c3df3f2803b658fd85"


def test_closed_without_merge_is_closed() -> None:
    pull = parse("pull_request.closed.json").pull_request

    assert pull is not None
    assert pull.state == "closed"
    assert pull.merged_at is None
    assert pull.closed_at == at(15, 21, 18)


def test_merged_at_alone_means_merged() -> None:
    # List calls and review payloads carry merged_at but no `merged` key.
    event_name, payload = load("pull_request.closed.merged.json")
    del payload["pull_request"]["merged"]

    pull = parse_webhook(event_name, payload).pull_request

    assert pull is not None
    assert pull.state == "merged"


def test_reopened_pull_request_is_open_again() -> None:
    pull = parse("pull_request.reopened.json").pull_request

    assert pull is not None
    assert pull.state == "open"
    assert pull.closed_at is None


def test_ready_for_review_sets_ready_at_to_the_update_time() -> None:
    pull = parse("pull_request.ready_for_review.json").pull_request

    assert pull is not None
    assert pull.draft is False
    assert pull.ready_at == at(15, 21, 18)
    assert pull.ready_at == pull.updated_at
    assert pull.pushed_at is None


def test_converted_to_draft_is_a_draft_and_not_ready() -> None:
    pull = parse("pull_request.converted_to_draft.json").pull_request

    assert pull is not None
    assert pull.draft is True
    assert pull.ready_at is None


def test_synchronize_sets_pushed_at_and_the_new_head() -> None:
    pull = parse("pull_request.synchronize.json").pull_request

    assert pull is not None
    assert pull.pushed_at == at(15, 22, 5)
    assert pull.pushed_at == pull.updated_at
    assert pull.head_sha == "8a3c2e1f9b7d6c5e4a3b2c1d0e9f8a7b6c5d4e3f"
    assert pull.ready_at is None


def test_labeled_and_unlabeled_carry_the_labels_after_the_change() -> None:
    labeled = parse("pull_request.labeled.json").pull_request
    unlabeled = parse("pull_request.unlabeled.json").pull_request

    assert labeled is not None and unlabeled is not None
    assert labeled.labels == ("bug",)
    assert unlabeled.labels == ()


def test_review_requested_and_removed_carry_the_requested_reviewers() -> None:
    requested = parse("pull_request.review_requested.json").pull_request
    removed = parse("pull_request.review_request_removed.json").pull_request

    assert requested is not None and removed is not None
    assert requested.requested_reviewers == (OCTOCAT,)
    assert removed.requested_reviewers == ()


def test_assigned_pull_request_is_upserted_like_any_other_action() -> None:
    event = parse("pull_request.assigned.json")

    assert event.action == "assigned"
    assert event.pull_request is not None
    assert event.pull_request.number == 2


# --- bots --------------------------------------------------------------------------------------------------------


def test_pull_request_opened_by_dependabot_is_flagged_as_bot() -> None:
    event = parse("pull_request.opened.bot.json")

    assert event.pull_request is not None
    assert event.pull_request.author == user("dependabot[bot]", "49699333", is_bot=True)
    assert event.sender is not None
    assert event.sender.is_bot is True
    assert event.pull_request.number == 3


def test_login_ending_in_bot_suffix_is_a_bot_even_when_typed_user() -> None:
    event_name, payload = load("pull_request.opened.json")
    payload["pull_request"]["user"]["login"] = "renovate[bot]"

    pull = parse_webhook(event_name, payload).pull_request

    assert pull is not None and pull.author is not None
    assert pull.author.is_bot is True


@pytest.mark.parametrize(
    ("login", "account_type", "expected"),
    [
        ("dependabot[bot]", "Bot", True),
        ("github-actions[bot]", "", True),
        ("ci-robot", "Bot", True),
        ("Codertocat", "User", False),
        ("robot", "User", False),
        ("octo-org", "Organization", False),
    ],
)
def test_bot_detection_by_type_or_login_suffix(login: str, account_type: str, expected: bool) -> None:
    assert is_bot(login, account_type=account_type) is expected


def test_human_accounts_are_not_bots() -> None:
    pull = parse("pull_request.opened.json").pull_request

    assert pull is not None and pull.author is not None
    assert pull.author.is_bot is False


# --- reviews and comments ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "state", "review_id", "body", "submitted_at"),
    [
        ("pull_request_review.submitted.approved.json", "approved", "237895672", "Looks good to me.", at(15, 20, 40)),
        (
            "pull_request_review.submitted.changes_requested.json",
            "changes_requested",
            "237895673",
            "Please add a test for the new section.",
            at(15, 20, 39),
        ),
        ("pull_request_review.submitted.commented.json", "commented", "237895671", "", at(15, 20, 38)),
        ("pull_request_review.edited.json", "approved", "237895672", "Looks good to me. Nice work!", at(15, 20, 40)),
        (
            "pull_request_review.dismissed.json",
            "dismissed",
            "237895673",
            "Please add a test for the new section.",
            at(15, 20, 39),
        ),
    ],
)
def test_review_events_become_review_records(
    name: str, state: str, review_id: str, body: str, submitted_at: dt.datetime
) -> None:
    event = parse(name)

    [review] = event.reviews
    assert review.state == state
    assert review.external_id == review_id
    assert review.reviewer == OCTOCAT
    assert review.commit_sha == HEAD_SHA
    assert review.body == body
    assert review.submitted_at == submitted_at
    assert event.pull_request_number == 2
    assert event.pull_request is not None
    assert event.pull_request.state == "open"
    assert event.pull_request.additions is None  # the review payload does not carry the figures


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("APPROVED", "approved"),
        ("CHANGES_REQUESTED", "changes_requested"),
        ("COMMENTED", "commented"),
        ("DISMISSED", "dismissed"),
        ("approved", "approved"),
        ("changes_requested", "changes_requested"),
    ],
)
def test_review_states_map_whatever_their_case(raw: str, expected: str) -> None:
    event_name, payload = load("pull_request_review.submitted.approved.json")
    payload["review"]["state"] = raw

    [review] = parse_webhook(event_name, payload).reviews

    assert review.state == expected


def test_pending_review_is_ignored() -> None:
    event_name, payload = load("pull_request_review.submitted.commented.json")
    payload["review"]["state"] = "pending"

    event = parse_webhook(event_name, payload)

    assert event.ignored == "pending review"
    assert event.reviews == []


def test_unknown_review_state_is_a_payload_error() -> None:
    event_name, payload = load("pull_request_review.submitted.approved.json")
    payload["review"]["state"] = "weird"

    with pytest.raises(PayloadError, match=r"^review\.state: unknown review state 'weird'$"):
        parse_webhook(event_name, payload)


def test_review_by_a_deleted_account_is_credited_to_ghost() -> None:
    event_name, payload = load("pull_request_review.submitted.approved.json")
    payload["review"]["user"] = None

    [review] = parse_webhook(event_name, payload).reviews

    assert review.reviewer.login == "ghost"


def test_review_comment_becomes_a_diff_comment_of_its_review() -> None:
    event = parse("pull_request_review_comment.created.json")

    [comment] = event.comments
    assert comment.kind == "diff"
    assert comment.external_id == "284312630"
    assert comment.review_external_id == "237895671"
    assert comment.path == "README.md"
    assert comment.body == "Maybe you should use more emoji on this line."
    assert comment.author == OCTOCAT
    assert comment.created_at == at(15, 20, 37)
    assert comment.is_system is False
    # Its pull request may lack `draft`: named by number, never upserted from this payload.
    assert event.pull_request is None
    assert event.pull_request_number == 2


def test_issue_comment_on_a_pull_request_is_a_conversation_comment() -> None:
    event = parse("issue_comment.created.json")

    [comment] = event.comments
    assert comment.kind == "conversation"
    assert comment.external_id == "492700401"
    assert comment.author == CODERTOCAT
    assert comment.review_external_id == ""
    assert event.pull_request_number == 2


def test_issue_comment_on_a_plain_issue_is_ignored() -> None:
    event_name, payload = load("issue_comment.created.json")
    del payload["issue"]["pull_request"]

    event = parse_webhook(event_name, payload)

    assert event.ignored == "comment on an issue, not a pull request"
    assert event.comments == []


# --- push ----------------------------------------------------------------------------------------------------------


def test_push_becomes_commits_on_the_branch() -> None:
    event = parse("push.json")

    assert event.ref == "changes"
    assert [commit.sha for commit in event.commits] == [
        "7d1b0d9e5ac4f1f1a8a6f2e2b7b3c4d5e6f7a8b9",
        "8a3c2e1f9b7d6c5e4a3b2c1d0e9f8a7b6c5d4e3f",
    ]


def test_push_commit_reads_co_authors_from_trailers() -> None:
    first, second = parse("push.json").commits

    assert first.co_authors == (
        GitUserRecord(name="Octo Cat", email="octocat@github.com"),
        GitUserRecord(name="Mona Lisa", email="mona@example.com"),
    )
    assert first.message.startswith("Add a contributing section to the README\n\n")
    # "Co-authored-by:" inside prose is not a trailer.
    assert second.co_authors == ()


def test_push_commit_author_account_comes_from_the_username() -> None:
    first, second = parse("push.json").commits

    assert first.author == GitUserRecord(name="Codertocat", email="21031067+codertocat@users.noreply.github.com")
    assert first.author_account == UserRecord(provider="github", login="Codertocat")
    assert first.committer == GitUserRecord(name="GitHub", email="noreply@github.com")
    assert second.author == GitUserRecord(name="Someone Without Account", email="someone@example.com")
    assert second.author_account is None


def test_push_timestamps_with_offsets_become_utc() -> None:
    first, second = parse("push.json").commits

    assert first.authored_at == at(15, 21, 0)  # "2019-05-15T08:21:00-07:00"
    assert second.authored_at == at(15, 22, 0)


def test_push_to_a_tag_is_ignored() -> None:
    event_name, payload = load("push.json")
    payload["ref"] = "refs/tags/v1.0"

    event = parse_webhook(event_name, payload)

    assert event.ignored == "push to refs/tags/v1.0, not a branch"
    assert event.commits == []


def test_branch_deletion_is_ignored() -> None:
    event_name, payload = load("push.json")
    payload.update(deleted=True, commits=[], head_commit=None, after="0" * 40)

    event = parse_webhook(event_name, payload)

    assert event.ignored == "branch deleted"
    assert event.ref == "changes"


# --- statuses and checks -------------------------------------------------------------------------------------------


def test_status_becomes_a_status_record() -> None:
    [status] = parse("status.json").statuses

    assert status.sha == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    assert status.context == "ci/build"
    assert status.state == "success"
    assert status.description == "Build passed"
    assert status.target_url == "https://ci.example.com/builds/1234"
    assert status.external_id == "6805126731"
    assert status.updated_at == at(15, 20, 55)
    assert status.source == "status"


def test_check_run_becomes_a_status_named_after_the_run() -> None:
    event = parse("check_run.completed.json")

    [status] = event.statuses
    assert status.context == "Octocoders-linter"
    assert status.state == "success"
    assert status.sha == HEAD_SHA
    assert status.source == "check_run"
    assert status.external_id == "128620228"
    assert status.updated_at == at(15, 21, 12)
    assert status.target_url == "https://github.com/Codertocat/Hello-World/runs/128620228"
    assert event.pull_request_number == 2


@pytest.mark.parametrize(
    ("status", "conclusion", "expected"),
    [
        ("completed", "success", "success"),
        ("completed", "neutral", "success"),
        ("completed", "skipped", "success"),
        ("completed", "failure", "failure"),
        ("completed", "timed_out", "failure"),
        ("completed", "cancelled", "failure"),
        ("completed", "action_required", "failure"),
        ("completed", "startup_failure", "failure"),
        ("completed", "stale", "failure"),
        ("queued", None, "pending"),
        ("in_progress", None, "pending"),
        ("waiting", None, "pending"),
        ("pending", None, "pending"),
    ],
)
def test_check_run_state_mapping(status: str, conclusion: str | None, expected: str) -> None:
    event_name, payload = load("check_run.completed.json")
    payload["check_run"].update(status=status, conclusion=conclusion)
    if status != "completed":
        payload["check_run"]["completed_at"] = None

    [record] = parse_webhook(event_name, payload).statuses

    assert record.state == expected


def test_check_run_without_completion_is_dated_by_its_start() -> None:
    event_name, payload = load("check_run.completed.json")
    payload["check_run"].update(status="in_progress", conclusion=None, completed_at=None)

    [record] = parse_webhook(event_name, payload).statuses

    assert record.updated_at == at(15, 21, 12)


def test_check_suite_becomes_a_status_named_after_the_app() -> None:
    event = parse("check_suite.completed.json")

    [status] = event.statuses
    assert status.context == "octocoders-linter"
    assert status.state == "success"
    assert status.source == "check_suite"
    assert status.sha == HEAD_SHA
    assert status.external_id == "118578147"
    assert status.updated_at == at(15, 21, 14)
    assert event.pull_request_number == 2


def test_check_suite_prefers_the_app_slug() -> None:
    event_name, payload = load("check_suite.completed.json")
    payload["check_suite"]["app"]["slug"] = "octo-linter"

    [status] = parse_webhook(event_name, payload).statuses

    assert status.context == "octo-linter"


def test_check_suite_on_several_pull_requests_names_none() -> None:
    event_name, payload = load("check_suite.completed.json")
    suite = payload["check_suite"]
    other = copy.deepcopy(suite["pull_requests"][0])
    other["number"] = 7
    suite["pull_requests"].append(other)

    event = parse_webhook(event_name, payload)

    assert event.pull_request_number is None
    assert len(event.statuses) == 1


# --- deployments ---------------------------------------------------------------------------------------------------


def test_deployment_created_is_a_pending_deployment() -> None:
    [deployment] = parse("deployment.created.json").deployments

    assert deployment.repository == REPOSITORY
    assert deployment.external_id == "145988746"
    assert deployment.environment == "production"
    assert deployment.sha == "c4295bd74fb0f4fda03689c3df3f2803b658fd85"
    assert deployment.ref == "master"
    assert deployment.status == "pending"
    assert deployment.created_at == at(15, 20, 53)
    assert deployment.finished_at is None


def test_successful_deployment_status_finishes_the_deployment() -> None:
    [deployment] = parse("deployment_status.success.json").deployments

    assert deployment.external_id == "145988746"
    assert deployment.status == "success"
    assert deployment.environment == "production"
    assert deployment.sha == "c4295bd74fb0f4fda03689c3df3f2803b658fd85"
    assert deployment.created_at == at(15, 20, 53)
    assert deployment.updated_at == at(15, 20, 55)
    assert deployment.finished_at == at(15, 20, 55)
    assert deployment.url == "https://ci.example.com/deploys/42"


@pytest.mark.parametrize(
    ("state", "expected", "finished"),
    [
        ("queued", "pending", False),
        ("pending", "pending", False),
        ("in_progress", "in_progress", False),
        ("failure", "failure", True),
        ("error", "error", True),
    ],
)
def test_deployment_status_states(state: str, expected: str, finished: bool) -> None:
    event_name, payload = load("deployment_status.success.json")
    payload["deployment_status"]["state"] = state

    [deployment] = parse_webhook(event_name, payload).deployments

    assert deployment.status == expected
    assert (deployment.finished_at is not None) is finished


def test_inactive_deployment_status_is_ignored() -> None:
    event_name, payload = load("deployment_status.success.json")
    payload["deployment_status"]["state"] = "inactive"

    event = parse_webhook(event_name, payload)

    assert event.ignored.startswith("deployment status inactive")
    assert event.deployments == []


# --- ping and events Tandem does not handle ------------------------------------------------------------------------


def test_ping_is_ignored_as_ping() -> None:
    event = parse("ping.json")

    assert event.ignored == "ping"
    assert event.repository == REPOSITORY
    assert event.sender == CODERTOCAT


def test_ping_of_an_organisation_hook_has_no_repository() -> None:
    _, payload = load("ping.json")
    del payload["repository"]

    event = parse_webhook("ping", payload)

    assert event.ignored == "ping"
    assert event.repository is None


def test_unhandled_event_is_ignored_with_its_name() -> None:
    event = parse("star.created.json")

    assert event.ignored == "unhandled event star"
    assert event.pull_request is None
    assert event.statuses == []


def test_unhandled_event_needs_no_particular_shape() -> None:
    event = parse_webhook("issues", {"action": "opened", "whatever": [1, 2]})

    assert event.ignored == "unhandled event issues"


# --- bad payloads ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [[], None, "{}", 42, b"{}"])
def test_payload_that_is_not_an_object_is_a_payload_error(payload: object) -> None:
    with pytest.raises(PayloadError, match=r"^payload: expected an object, got "):
        parse_webhook("pull_request", payload)


def test_empty_event_name_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match=r"^event: "):
        parse_webhook("", {})


def test_wrong_type_names_the_key_path() -> None:
    event_name, payload = load("pull_request.opened.json")
    payload["pull_request"]["number"] = "2"

    with pytest.raises(PayloadError) as raised:
        parse_webhook(event_name, payload)

    assert str(raised.value) == "pull_request.number: expected an integer, got string"


def test_missing_key_names_the_key_path() -> None:
    event_name, payload = load("pull_request.opened.json")
    del payload["pull_request"]["head"]["sha"]

    with pytest.raises(PayloadError) as raised:
        parse_webhook(event_name, payload)

    assert str(raised.value) == "pull_request.head.sha: missing"


@pytest.mark.parametrize(
    ("name", "mutate", "message"),
    [
        ("pull_request.opened.json", lambda p: p.pop("repository"), "repository: missing"),
        ("pull_request.opened.json", lambda p: p.pop("pull_request"), "pull_request: missing"),
        (
            "pull_request.opened.json",
            lambda p: p.update(pull_request=None),
            "pull_request: expected an object, got null",
        ),
        (
            "pull_request.opened.json",
            lambda p: p.update(pull_request=[]),
            "pull_request: expected an object, got array",
        ),
        (
            "pull_request.opened.json",
            lambda p: p["pull_request"].update(number=True),
            "pull_request.number: expected an integer, got boolean",
        ),
        (
            "pull_request.opened.json",
            lambda p: p["pull_request"].update(head=None),
            "pull_request.head: expected an object, got null",
        ),
        (
            "pull_request.opened.json",
            lambda p: p["pull_request"].update(created_at="yesterday"),
            "pull_request.created_at: expected a date-time, got 'yesterday'",
        ),
        (
            "pull_request.opened.json",
            lambda p: p["pull_request"].update(labels=["bug"]),
            "pull_request.labels[0]: expected an object, got string",
        ),
        (
            "pull_request.opened.json",
            lambda p: p["pull_request"].update(state="draft"),
            "pull_request.state: expected 'open' or 'closed', got 'draft'",
        ),
        (
            "pull_request.opened.json",
            lambda p: p["repository"].update(id="186853002"),
            "repository.id: expected an integer, got string",
        ),
        ("push.json", lambda p: p.update(commits={}), "commits: expected an array, got object"),
        ("push.json", lambda p: p["commits"][1].pop("id"), "commits[1].id: missing"),
        ("status.json", lambda p: p.update(state="green"), "state: unknown status state 'green'"),
        ("check_run.completed.json", lambda p: p["check_run"].pop("name"), "check_run.name: missing"),
        (
            "pull_request_review.submitted.approved.json",
            lambda p: p["review"].update(submitted_at=None),
            "review.submitted_at: expected a date-time, got null",
        ),
        (
            "deployment_status.success.json",
            lambda p: p["deployment_status"].update(state="exploded"),
            "deployment_status.state: unknown deployment state 'exploded'",
        ),
    ],
)
def test_bad_payloads_raise_payload_error_naming_the_path(name: str, mutate: Any, message: str) -> None:
    event_name, payload = load(name)
    mutate(payload)

    with pytest.raises(PayloadError) as raised:
        parse_webhook(event_name, payload)

    assert str(raised.value) == message


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path of a payload, except URL templates the adapter never reads."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("_url") and key != "html_url" or key == "_links":
                continue
            yield (*path, key)
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:2]):
            yield (*path, index)
            yield from _paths(item, (*path, index))


def _set(payload: Any, path: tuple[Any, ...], value: Any) -> None:
    target = payload
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()
_MUTATIONS: tuple[object, ...] = (_DELETE, None, "text", 7, 10**30, True, [], {})
_MUTATED = [
    "pull_request.opened.json",
    "pull_request.closed.merged.json",
    "pull_request_review.submitted.approved.json",
    "pull_request_review_comment.created.json",
    "issue_comment.created.json",
    "push.json",
    "status.json",
    "check_run.completed.json",
    "check_suite.completed.json",
    "deployment.created.json",
    "deployment_status.success.json",
]


@pytest.mark.parametrize("name", _MUTATED)
def test_any_missing_or_mistyped_value_raises_payload_error_or_parses(name: str) -> None:
    """Never a KeyError or TypeError: each value in turn is deleted or replaced by every JSON type."""
    event_name, original = load(name)
    raised = 0
    for path in _paths(original):
        for mutation in _MUTATIONS:
            if isinstance(path[-1], int) and mutation is _DELETE:
                continue
            payload = _shallow_copy_along(original, path)
            _set(payload, path, mutation)
            try:
                parse_webhook(event_name, payload)
            except PayloadError:
                raised += 1
    assert raised > 0


def _shallow_copy_along(payload: Any, path: tuple[Any, ...]) -> Any:
    """Copy only the containers on the way to `path`, so mutating it leaves the original intact (and is quick)."""
    root = copy.copy(payload)
    source, target = payload, root
    for key in path[:-1]:
        child = copy.copy(source[key])
        target[key] = child
        source, target = source[key], child
    return root


# --- signatures ------------------------------------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_signature_from_github_documentation_verifies() -> None:
    # docs.github.com, "Validating webhook deliveries": the documented test values.
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

    assert verify_signature("It's a Secret to Everybody", b"Hello, World!", header) is True


def test_signature_of_a_fixture_body_verifies() -> None:
    body = (FIXTURES / "pull_request.opened.json").read_bytes()

    assert verify_signature("s3cret", body, sign("s3cret", body)) is True


def test_signature_with_uppercase_hex_verifies() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    header = sign("s3cret", body)

    assert verify_signature("s3cret", body, "sha256=" + header.removeprefix("sha256=").upper()) is True


@pytest.mark.parametrize(
    ("secret", "body", "header"),
    [
        ("wrong", b"{}", sign("s3cret", b"{}")),
        ("s3cret", b'{"tampered": true}', sign("s3cret", b"{}")),
        ("s3cret", b"{}", None),
        ("s3cret", b"{}", ""),
        ("s3cret", b"{}", "sha1=" + hmac.new(b"s3cret", b"{}", hashlib.sha1).hexdigest()),
        ("s3cret", b"{}", sign("s3cret", b"{}").removeprefix("sha256=")),
        ("s3cret", b"{}", "sha256=not-hex-é"),
        ("", b"{}", sign("", b"{}")),
    ],
)
def test_bad_or_missing_signatures_do_not_verify(secret: str, body: bytes, header: str | None) -> None:
    assert verify_signature(secret, body, header) is False
