"""GitLab webhook payloads → records.

Two sets of payloads: the 26 that real GitLab instances sent (`tests/fixtures/gitlab`, copied from the shared set; see
SOURCES.md there) and, in `tests/fixtures/gitlab_docs`, payloads in the shapes GitLab's "Webhook events" and
"System hooks" pages document, for what the real ones lack: pipeline, job and deployment hooks, a note hook with
`action`, the per-user `approval`/`unapproval` actions, a draft → ready update, a note by a project bot, a push
with Co-authored-by trailers, a system-hook push and a note on a commit.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reviews.integrations.bots import is_bot
from reviews.integrations.gitlab import parse_timestamp, parse_webhook, verify_token
from reviews.integrations.records import PayloadError, WebhookEvent

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "gitlab"
DOCS_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "gitlab_docs"

HEADERS = {
    "merge_request": "Merge Request Hook",
    "note": "Note Hook",
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "release": "Release Hook",
}
# go-gitlab's fixture arrived as an integration ("service") hook, not as a project webhook.
SERVICE_HOOK_FIXTURES = {"mr_update_oldrev.json"}
IGNORED_KINDS = {"tag_push", "release"}

DOCS_HEADERS = {
    "pipeline_hook": "Pipeline Hook",
    "job_hook": "Job Hook",
    "deployment_hook": "Deployment Hook",
    "note_mr_action": "Note Hook",
    "note_mr_bot": "Note Hook",
    "note_commit": "Note Hook",
    "mr_approval": "Merge Request Hook",
    "mr_unapproval": "Merge Request Hook",
    "mr_ready": "Merge Request Hook",
    "push_coauthored": "Push Hook",
    "system_push": "System Hook",
}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


def shared(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((SHARED_FIXTURES / name).read_text())
    return payload


def docs(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((DOCS_FIXTURES / f"{name}.json").read_text())
    return payload


def header_for(name: str, payload: dict[str, Any]) -> str:
    return "Service Hook" if name in SERVICE_HOOK_FIXTURES else HEADERS[payload["object_kind"]]


def parse_shared(name: str) -> WebhookEvent:
    payload = shared(name)
    return parse_webhook(header_for(name, payload), payload)


def parse_docs(name: str) -> WebhookEvent:
    return parse_webhook(DOCS_HEADERS[name], docs(name))


SHARED_NAMES = sorted(path.name for path in SHARED_FIXTURES.glob("*.json"))
DOCS_NAMES = sorted(path.stem for path in DOCS_FIXTURES.glob("*.json"))


def test_the_real_payloads_are_in_the_repository() -> None:
    assert SHARED_FIXTURES.is_dir(), SHARED_FIXTURES
    assert len(SHARED_NAMES) == 26


def test_every_docs_fixture_has_a_header() -> None:
    assert sorted(DOCS_HEADERS) == DOCS_NAMES


@pytest.mark.parametrize("name", SHARED_NAMES)
def test_every_real_payload_parses_with_its_header(name: str) -> None:
    payload = shared(name)
    event = parse_webhook(header_for(name, payload), payload)

    assert event.provider == "gitlab"
    assert event.event == payload["object_kind"]
    assert event.repository is not None or payload["object_kind"] == "release"
    if payload["object_kind"] in IGNORED_KINDS:
        assert event.ignored
    else:
        assert event.ignored == ""
    if payload["object_kind"] == "merge_request":
        assert event.pull_request is not None
        assert event.pull_request.number == payload["object_attributes"]["iid"]
        assert event.pull_request.created_at.tzinfo is dt.UTC
        assert event.pull_request.updated_at.tzinfo is dt.UTC


@pytest.mark.parametrize("name", DOCS_NAMES)
def test_every_documented_payload_parses(name: str) -> None:
    event = parse_docs(name)

    assert event.provider == "gitlab"
    assert event.repository is not None


# --- merge request hooks ----------------------------------------------------------------------------------------


def test_opened_merge_request_is_read_field_by_field() -> None:
    event = parse_shared("mr_open_real.json")
    pr = event.pull_request

    assert event.action == "open"
    assert pr is not None
    assert pr.repository.provider == "gitlab"
    assert pr.repository.external_id == "72081820"
    assert pr.repository.full_path == "demoaccount2-commits-group/test_ci_tmp"
    assert pr.repository.default_branch == "main"
    assert pr.repository.web_url == "https://gitlab.com/demoaccount2-commits-group/test_ci_tmp"
    assert pr.number == 3
    assert pr.external_id == "405095454"
    assert pr.title == "Edit README.md for more text to read"
    assert pr.body == ":tada: text that you might read eventually"
    assert pr.state == "open"
    assert pr.draft is False
    assert pr.base_ref == "main"
    assert pr.head_ref == "real6543-main-patch-42541"
    assert pr.head_sha == "2f7670508b771e7e77839402be8b34b13787aba8"
    assert pr.merge_commit_sha == ""
    assert pr.created_at == utc(2025, 8, 5, 21, 48, 25)
    assert pr.updated_at == utc(2025, 8, 5, 21, 48, 27)
    assert pr.labels == ("documentation",)
    assert pr.requested_reviewers == ()
    assert pr.web_url == "https://gitlab.com/demoaccount2-commits-group/test_ci_tmp/-/merge_requests/3"
    assert pr.additions is None and pr.deletions is None and pr.changed_files is None
    assert pr.pushed_at is None and pr.ready_at is None and pr.merged_at is None
    assert pr.author is not None
    assert (pr.author.login, pr.author.external_id, pr.author.name) == ("real6543", "4575606", "6543")
    assert pr.author.email == ""  # "[REDACTED]" is no address
    assert event.sender == pr.author
    assert event.reviews == [] and event.withdrawn_approvals == []


def test_2017_merge_request_without_event_type_or_user_ids_is_read() -> None:
    event = parse_shared("mr_open_goscm.json")
    pr = event.pull_request

    assert pr is not None
    assert pr.repository.external_id == "4861503"
    assert pr.repository.full_path == "gitlab-org/hello-world"
    assert pr.repository.default_branch == "master"
    assert (pr.number, pr.external_id, pr.title) == (1, "6632669", "update readme")
    assert pr.state == "open"
    assert pr.draft is False  # from the legacy work_in_progress
    assert pr.created_at == utc(2017, 12, 10, 17, 1, 11)
    assert pr.head_sha == "c4c79227ed610f1151f05bbc5be33b4f340d39c8"
    assert pr.labels == ()
    assert pr.requested_reviewers is None  # a 2017 payload cannot say
    assert pr.author is not None and pr.author.login == "sytses" and pr.author.external_id == ""
    assert pr.web_url == "https://gitlab.com/gitlab-org/hello-world/merge_requests/1"


def test_new_push_on_a_merge_request_sets_pushed_at() -> None:
    pr = parse_shared("mr_update.json").pull_request

    assert pr is not None
    assert pr.pushed_at == pr.updated_at == utc(2022, 1, 17, 15, 47, 39)
    assert pr.head_sha == "c136499ec574e1034b24c5d306de9acda3005367"
    assert pr.requested_reviewers is None  # no reviewer_ids in this payload


def test_service_hook_header_is_dispatched_on_object_kind() -> None:
    event = parse_shared("mr_update_oldrev.json")
    pr = event.pull_request

    assert event.event == "merge_request" and event.action == "update"
    assert pr is not None
    assert pr.repository.web_url == "http://10.40.8.5:3200/test/woodpecker"
    assert pr.pushed_at == utc(2021, 9, 27, 5, 1, 21)
    assert pr.head_sha == "0ab96a10266b95b4b533dcfd98738015fbe70889"


def test_update_without_oldrev_is_not_a_push() -> None:
    for name in ("mr_update_nochanges.json", "mr_update_edited.json", "mr_update_milestone.json"):
        pr = parse_shared(name).pull_request
        assert pr is not None and pr.pushed_at is None, name


def test_edited_merge_request_carries_the_new_title() -> None:
    pr = parse_shared("mr_update_edited.json").pull_request

    assert pr is not None
    assert pr.title == "Edit README for more text to read"
    assert pr.body == ":tada: text that you might read eventually."


def test_marking_as_draft_sets_draft_without_ready_at() -> None:
    pr = parse_shared("mr_update_draft_goscm.json").pull_request

    assert pr is not None
    assert pr.draft is True
    assert pr.title == "Draft: Update README.md"
    assert pr.ready_at is None


def test_draft_to_ready_sets_ready_at() -> None:
    pr = parse_docs("mr_ready").pull_request

    assert pr is not None
    assert pr.draft is False
    assert pr.ready_at == pr.updated_at == utc(2013, 12, 4, 9, 12, 1)
    assert pr.author is not None and pr.author.login == "author51"  # the acting user is the author (id 51)


def test_legacy_work_in_progress_change_sets_ready_at() -> None:
    payload = shared("mr_update_edited.json")
    payload["object_attributes"].pop("draft")
    payload["changes"] = {"work_in_progress": {"previous": True, "current": False}}

    pr = parse_webhook("Merge Request Hook", payload).pull_request

    assert pr is not None and pr.ready_at == utc(2025, 8, 5, 22, 1, 30)


def test_title_losing_its_draft_prefix_sets_ready_at_on_old_gitlab() -> None:
    payload = shared("mr_update_edited.json")
    payload["changes"] = {"title": {"previous": "WIP: Edit README", "current": "Edit README"}}

    pr = parse_webhook("Merge Request Hook", payload).pull_request

    assert pr is not None and pr.ready_at is not None


def test_labels_come_from_label_titles() -> None:
    pr = parse_shared("mr_update_labels.json").pull_request

    assert pr is not None and pr.labels == ("enhancement", "help wanted")


def test_reviewers_become_requested_reviewers() -> None:
    pr = parse_shared("mr_update_reviewers.json").pull_request

    assert pr is not None and pr.requested_reviewers is not None
    assert [(r.login, r.external_id) for r in pr.requested_reviewers] == [("real6543", "4575606")]


def test_reopened_merge_request_keeps_reviewers_and_labels() -> None:
    event = parse_shared("mr_reopen.json")
    pr = event.pull_request

    assert event.action == "reopen"
    assert pr is not None and pr.state == "open"
    assert pr.requested_reviewers is not None
    assert [r.login for r in pr.requested_reviewers] == ["demoaccount2commits_placeholder_6s82rp"]
    assert pr.labels == ("documentation",)
    assert pr.closed_at is None


def test_assignee_change_is_an_update_with_nothing_special() -> None:
    event = parse_shared("mr_update_assignees.json")

    assert event.action == "update" and event.ignored == ""
    assert event.pull_request is not None and event.pull_request.labels == ("good first issue",)


def test_merged_merge_request_records_merge() -> None:
    event = parse_shared("mr_merge.json")
    pr = event.pull_request

    assert pr is not None
    assert pr.state == "merged"
    assert pr.merge_commit_sha == "43411b53d670203e887c4985c4e58e8e6b7c109e"
    assert pr.merged_at == utc(2023, 12, 5, 18, 43, 0)
    assert pr.merged_by is not None and pr.merged_by.login == "anbraten"
    assert pr.requested_reviewers == ()


def test_2017_merged_merge_request_records_merge() -> None:
    pr = parse_shared("mr_merge_goscm.json").pull_request

    assert pr is not None
    assert pr.state == "merged"
    assert pr.merge_commit_sha == "78a76ee6b4992a6baf64c59fc4c44c7323d60438"
    assert pr.merged_at == utc(2017, 12, 10, 17, 8, 7)
    assert pr.merged_by is not None and pr.merged_by.login == "sytses"
    # Merged by someone other than the author: only author_id is known, for the services to resolve.
    assert pr.author is not None and pr.author.login == "" and pr.author.external_id == "51764"


@pytest.mark.parametrize("name", ["mr_close.json", "mr_close_goscm.json"])
def test_closed_merge_request_records_closing_time(name: str) -> None:
    pr = parse_shared(name).pull_request

    assert pr is not None
    assert pr.state == "closed"
    assert pr.closed_at == pr.updated_at
    assert pr.merged_at is None


def test_locked_merge_request_is_still_open() -> None:
    payload = shared("mr_update.json")
    payload["object_attributes"]["state"] = "locked"

    pr = parse_webhook("Merge Request Hook", payload).pull_request

    assert pr is not None and pr.state == "open"


def test_state_id_is_used_when_state_is_missing() -> None:
    payload = shared("mr_merge.json")
    payload["object_attributes"].pop("state")

    pr = parse_webhook("Merge Request Hook", payload).pull_request

    assert pr is not None and pr.state == "merged"


def test_approved_merge_request_is_an_approval_on_the_head_commit() -> None:
    event = parse_shared("mr_approved.json")

    assert event.action == "approved"
    assert len(event.reviews) == 1
    review = event.reviews[0]
    assert review.external_id == "approval:2251488"
    assert review.state == "approved"
    assert review.reviewer.login == "anbraten"
    assert review.commit_sha == "c136499ec574e1034b24c5d306de9acda3005367"
    assert review.submitted_at == utc(2022, 1, 17, 15, 47, 39)
    assert event.withdrawn_approvals == []


def test_individual_approval_is_an_approval() -> None:
    event = parse_docs("mr_approval")

    assert event.action == "approval"
    assert [(r.external_id, r.reviewer.login, r.commit_sha) for r in event.reviews] == [
        ("approval:6", "user1", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7")
    ]


@pytest.mark.parametrize(("fixture", "loader"), [("mr_unapproved.json", parse_shared), ("mr_unapproval", parse_docs)])
def test_unapproval_withdraws_the_users_approval(fixture: str, loader: Any) -> None:
    event = loader(fixture)

    assert event.reviews == []
    assert [user.login for user in event.withdrawn_approvals] == [event.sender.login]
    assert event.pull_request is not None


def test_unapproved_real_payload_names_the_user() -> None:
    event = parse_shared("mr_unapproved.json")

    assert [(u.login, u.external_id) for u in event.withdrawn_approvals] == [("real6543", "4575606")]


def test_system_hook_merge_request_is_dispatched_on_object_kind() -> None:
    payload = docs("mr_approval")
    payload["object_attributes"]["action"] = "open"

    event = parse_webhook("System Hook", payload)

    assert event.event == "merge_request" and event.pull_request is not None


# --- note hooks -------------------------------------------------------------------------------------------------


def test_comment_on_a_merge_request_is_a_conversation_comment() -> None:
    event = parse_shared("note_mr_real.json")

    assert event.event == "note" and event.action == "create"  # no `action` before GitLab 16.11: a create
    [comment] = event.comments
    assert comment.external_id == "50772616"
    assert comment.body == "lgtm"
    assert comment.kind == "conversation"
    assert comment.is_system is False
    assert comment.path == ""
    assert comment.created_at == utc(2017, 12, 10, 17, 5, 14)
    assert comment.author.login == "sytses"
    pr = event.pull_request
    assert pr is not None
    assert (pr.number, pr.external_id, pr.state) == (1, "6632669", "open")
    assert pr.head_sha == "c4c79227ed610f1151f05bbc5be33b4f340d39c8"
    assert pr.repository.full_path == "gitlab-org/hello-world"
    assert pr.labels is None and pr.requested_reviewers is None and pr.author is None
    assert pr.additions is None and pr.changed_files is None


def test_line_comment_is_a_diff_comment_on_its_file() -> None:
    event = parse_shared("note_mr_diff_real.json")

    [comment] = event.comments
    assert comment.kind == "diff"
    assert comment.path == "README.md"
    assert comment.body == "check spelling"


def test_comment_with_action_reads_the_embedded_merge_request() -> None:
    event = parse_docs("note_mr_action")

    assert event.action == "create"
    [comment] = event.comments
    assert (comment.external_id, comment.body, comment.kind) == ("1244", "This MR needs work.", "conversation")
    assert comment.author.login == "root" and comment.author.external_id == "1"
    pr = event.pull_request
    assert pr is not None
    assert pr.labels == ("Afterpod", "Element")
    assert (pr.base_ref, pr.head_ref) == ("markdown", "master")
    assert pr.web_url == ""  # the embedded merge request has no url in the new shape


def test_comment_by_a_project_bot_is_marked_as_a_bot() -> None:
    event = parse_docs("note_mr_bot")

    [comment] = event.comments
    assert comment.author.is_bot is True
    assert comment.kind == "diff" and comment.path == "app/models/user.rb"


def test_system_note_is_flagged() -> None:
    payload = shared("note_mr_real.json")
    payload["object_attributes"]["system"] = True
    payload["object_attributes"]["note"] = "approved this merge request"

    [comment] = parse_webhook("Note Hook", payload).comments

    assert comment.is_system is True


def test_edited_comment_keeps_the_update_action() -> None:
    payload = docs("note_mr_action")
    payload["object_attributes"]["action"] = "update"

    assert parse_webhook("Note Hook", payload).action == "update"


@pytest.mark.parametrize("noteable", ["Commit", "Issue", "Snippet"])
def test_notes_outside_merge_requests_are_ignored(noteable: str) -> None:
    payload = docs("note_commit")
    payload["object_attributes"]["noteable_type"] = noteable

    event = parse_webhook("Note Hook", payload)

    assert event.ignored == f"note on a {noteable}, not on a merge request"
    assert event.comments == [] and event.pull_request is None


# --- push hooks -------------------------------------------------------------------------------------------------


def test_push_lists_its_commits() -> None:
    event = parse_shared("push_real.json")

    assert event.ref == "main"
    assert event.action == ""
    assert event.sender is not None and (event.sender.login, event.sender.external_id) == ("test", "2")
    [commit] = event.commits
    assert commit.sha == "16862e368d8ab812e48833b741dad720d6e2cb7f"
    assert commit.message == "Update main.go"
    assert (commit.author.name, commit.author.email) == ("the test", "test@test.test")
    assert commit.authored_at == utc(2021, 9, 27, 4, 46, 14)
    assert commit.co_authors == ()
    assert event.repository is not None and event.repository.external_id == "2"


def test_branch_deletion_has_a_ref_and_no_commits() -> None:
    event = parse_shared("push_branch_delete_real.json")

    assert event.ref == "feature"
    assert event.action == "deleted"
    assert event.commits == []
    assert event.ignored == ""


def test_branch_deletion_ignores_listed_commits() -> None:
    payload = shared("push_real.json")
    payload["after"] = "0" * 40

    assert parse_webhook("Push Hook", payload).commits == []


def test_co_authored_by_trailers_become_co_authors() -> None:
    event = parse_docs("push_coauthored")

    assert event.ref == "feature/pairing"
    first, second = event.commits
    assert [(c.name, c.email) for c in first.co_authors] == [
        ("Jordi Mallach", "jordi@softcatala.org"),
        ("Ana Pérez", "ana.perez@example.com"),
    ]
    assert first.authored_at == utc(2011, 12, 12, 12, 27, 31)  # +02:00 → UTC
    assert second.co_authors == ()  # "Co-authored-by:" in prose is not a trailer


def test_system_hook_push_without_object_kind_is_a_push() -> None:
    event = parse_docs("system_push")

    assert event.event == "push"
    assert event.ref == "master"
    assert event.repository is not None and event.repository.external_id == "15"  # project has no id here
    assert [c.sha for c in event.commits] == ["c5feabde2d8cd023215af4d2ceeb7a64839fc428"]
    assert event.sender is None  # system hooks name the pusher only by display name


@pytest.mark.parametrize("name", ["tag_push_real.json", "tag_delete_real.json", "release_real.json"])
def test_tags_and_releases_are_ignored_with_a_reason(name: str) -> None:
    event = parse_shared(name)

    assert event.ignored.endswith("events are not used by Tandem")
    assert event.commits == [] and event.pull_request is None


# --- pipelines, jobs, deployments -------------------------------------------------------------------------------


def test_pipeline_becomes_a_pipeline_status_and_one_status_per_job() -> None:
    event = parse_docs("pipeline_hook")

    assert event.event == "pipeline" and event.action == "success"
    assert event.pull_request_number == 1
    assert event.ref == "master"
    pipeline, *jobs = event.statuses
    assert pipeline.context == "gitlab-ci/pipeline"
    assert pipeline.source == "pipeline"
    assert pipeline.sha == "bcbb5ec396a2c0f828686f14fac9b80b780504f2"
    assert pipeline.state == "success"
    assert pipeline.external_id == "pipeline:31"
    assert pipeline.target_url == "http://example.com/gitlab-org/gitlab-test/-/pipelines/31"
    assert pipeline.updated_at == utc(2016, 8, 12, 15, 26, 29)
    assert {job.context: job.state for job in jobs} == {
        "production": "error",  # skipped
        "test-image": "success",
        "test-build": "failure",
        "build-image": "success",
        "staging": "pending",  # created
    }
    assert all(job.source == "job" and job.sha == pipeline.sha for job in jobs)
    build = next(job for job in jobs if job.context == "test-build")
    assert build.external_id == "job:378"
    assert build.description == "test: failed (script_failure)"
    assert build.target_url == "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/jobs/378"
    assert build.updated_at == utc(2016, 8, 12, 15, 26, 29)


def test_child_pipeline_gets_its_own_context() -> None:
    payload = docs("pipeline_hook")
    payload["object_attributes"]["source"] = "parent_pipeline"
    payload["object_attributes"]["name"] = "docs"

    assert parse_webhook("Pipeline Hook", payload).statuses[0].context == "gitlab-ci/pipeline/docs"


@pytest.mark.parametrize(
    ("gitlab_status", "state"),
    [
        ("created", "pending"),
        ("waiting_for_resource", "pending"),
        ("preparing", "pending"),
        ("pending", "pending"),
        ("running", "pending"),
        ("scheduled", "pending"),
        ("manual", "pending"),
        ("success", "success"),
        ("failed", "failure"),
        ("canceled", "error"),
        ("canceling", "error"),
        ("skipped", "error"),
        ("something_new", "error"),
    ],
)
def test_pipeline_status_mapping(gitlab_status: str, state: str) -> None:
    payload = docs("pipeline_hook")
    payload["object_attributes"]["status"] = gitlab_status

    assert parse_webhook("Pipeline Hook", payload).statuses[0].state == state


def test_job_becomes_a_job_status() -> None:
    event = parse_docs("job_hook")

    assert event.event == "build" and event.action == "failed"
    [status] = event.statuses
    assert status.context == "test"
    assert status.source == "job"
    assert status.sha == "2293ada6b400935a1378653304eaf6221e0fdb8f"
    assert status.state == "failure"
    assert status.external_id == "job:1977"
    assert status.updated_at == dt.datetime(2021, 2, 23, 2, 43, 5, 371000, tzinfo=dt.UTC)
    assert status.description == "test: failed (script_failure)"
    assert status.target_url == "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/jobs/1977"
    assert event.ref == "gitlab-script-trigger"
    assert event.sender is None  # job hooks send the user without a username


def test_job_allowed_to_fail_counts_as_passed() -> None:
    payload = docs("job_hook")
    payload["build_allow_failure"] = True

    assert parse_webhook("Job Hook", payload).statuses[0].state == "success"


def test_old_job_hook_without_project_uses_project_id_and_homepage() -> None:
    payload = docs("job_hook")
    payload.pop("project")
    payload["build_status"] = "running"
    payload["build_finished_at"] = None

    event = parse_webhook("Job Hook", payload)

    assert event.repository is not None
    assert (event.repository.external_id, event.repository.full_path) == ("380", "gitlab-org/gitlab-test")
    assert event.statuses[0].state == "pending"
    assert event.statuses[0].updated_at == dt.datetime(2021, 2, 23, 2, 41, 40, 112000, tzinfo=dt.UTC)


def test_deployment_becomes_a_deployment_record() -> None:
    event = parse_docs("deployment_hook")

    [deployment] = event.deployments
    assert deployment.external_id == "15"
    assert deployment.environment == "staging"
    assert deployment.sha == "279484c09fbe69ededfced8c1bb6e6d24616b468"
    assert deployment.status == "success"
    assert deployment.created_at == deployment.updated_at == utc(2021, 4, 28, 19, 50)  # 21:50 +0200
    assert deployment.finished_at == utc(2021, 4, 28, 19, 50)
    assert deployment.url == "http://10.126.0.2:3000/root/test-deployment-webhooks/-/jobs/796"
    assert deployment.repository.full_path == "root/test-deployment-webhooks"
    assert event.sender is not None and event.sender.login == "root"


@pytest.mark.parametrize(
    ("gitlab_status", "status", "finished"),
    [
        ("created", "pending", False),
        ("blocked", "pending", False),
        ("running", "in_progress", False),
        ("success", "success", True),
        ("failed", "failure", True),
        ("canceled", "canceled", True),
    ],
)
def test_deployment_status_mapping(gitlab_status: str, status: str, finished: bool) -> None:
    payload = docs("deployment_hook")
    payload["status"] = gitlab_status

    [deployment] = parse_webhook("Deployment Hook", payload).deployments

    assert deployment.status == status
    assert (deployment.finished_at is not None) is finished


@pytest.mark.parametrize("approval_status", ["approved", "rejected"])
def test_deployment_approvals_are_ignored(approval_status: str) -> None:
    payload = docs("deployment_hook")
    payload["status"] = approval_status

    event = parse_webhook("Deployment Hook", payload)

    assert event.ignored and event.deployments == []


def test_deployment_created_through_the_api_has_no_job_url() -> None:
    payload = docs("deployment_hook")
    payload["deployable_url"] = None

    [deployment] = parse_webhook("Deployment Hook", payload).deployments

    assert deployment.url == "https://staging.example.com"


# --- headers ----------------------------------------------------------------------------------------------------


def test_unknown_header_is_ignored_with_a_reason() -> None:
    event = parse_webhook("Wiki Page Hook", {"object_kind": "wiki_page"})

    assert event.ignored == "wiki_page events are not used by Tandem"


def test_header_tandem_does_not_know_is_ignored() -> None:
    event = parse_webhook("Vulnerability Hook", {"object_kind": "vulnerability"})

    assert event.ignored == "unsupported X-Gitlab-Event 'Vulnerability Hook'"


def test_system_hook_events_tandem_does_not_use_are_ignored() -> None:
    event = parse_webhook("System Hook", {"event_name": "user_create", "username": "js", "user_id": 41})

    assert event.ignored == "user_create events are not used by Tandem"


def test_payload_of_another_kind_than_its_header_is_refused() -> None:
    with pytest.raises(PayloadError, match="object_kind: 'note' does not match the 'Merge Request Hook' header"):
        parse_webhook("Merge Request Hook", shared("note_mr_real.json"))


# --- malformed payloads -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "mutate", "message"),
    [
        ("mr_open_real.json", lambda p: p.pop("object_attributes"), "object_attributes: missing"),
        ("mr_open_real.json", lambda p: p["object_attributes"].pop("iid"), "object_attributes.iid: missing"),
        (
            "mr_open_real.json",
            lambda p: p["object_attributes"].update(iid="3"),
            "object_attributes.iid: expected an integer, got string",
        ),
        (
            "mr_open_real.json",
            lambda p: p["object_attributes"].update(created_at="yesterday"),
            "object_attributes.created_at: not a timestamp: 'yesterday'",
        ),
        (
            "mr_open_real.json",
            lambda p: p["object_attributes"]["last_commit"].pop("id"),
            "object_attributes.last_commit.id: missing",
        ),
        ("mr_open_real.json", lambda p: p.update(labels="bug"), "labels: expected an array, got string"),
        ("mr_open_real.json", lambda p: p["labels"][0].pop("title"), r"labels\[0\].title: missing"),
        ("mr_open_real.json", lambda p: p["project"].pop("id"), "project.id: missing"),
        ("mr_open_real.json", lambda p: p.update(project=[]), "project: expected an object, got array"),
        ("mr_approved.json", lambda p: p.pop("user"), "user: missing on a merge request approved event"),
        (
            "mr_open_real.json",
            lambda p: p["object_attributes"].update(state="weird"),
            "object_attributes.state: unknown merge request state 'weird'",
        ),
        ("mr_open_real.json", lambda p: p.update(object_kind=7), "object_kind: expected a string, got integer"),
        ("note_mr_real.json", lambda p: p.pop("merge_request"), "merge_request: missing"),
        ("note_mr_real.json", lambda p: p["user"].pop("username"), "user.username: missing"),
        ("note_mr_real.json", lambda p: p["object_attributes"].update(system="no"), "system: expected a boolean"),
        ("push_real.json", lambda p: p["commits"][0].pop("timestamp"), r"commits\[0\].timestamp: missing"),
        ("push_real.json", lambda p: p.update(commits={}), "commits: expected an array, got object"),
        ("push_real.json", lambda p: p.pop("ref"), "ref: missing"),
    ],
)
def test_malformed_payload_raises_payload_error_naming_the_key(fixture: str, mutate: Any, message: str) -> None:
    payload = shared(fixture)
    mutate(payload)

    with pytest.raises(PayloadError, match=message):
        parse_webhook(header_for(fixture, shared(fixture)), payload)


@pytest.mark.parametrize(
    ("fixture", "mutate", "message"),
    [
        ("pipeline_hook", lambda p: p["object_attributes"].pop("sha"), "object_attributes.sha: missing"),
        ("pipeline_hook", lambda p: p["builds"][1].pop("name"), r"builds\[1\].name: missing"),
        ("job_hook", lambda p: p.update(build_id="1977"), "build_id: expected an integer, got string"),
        ("deployment_hook", lambda p: p.pop("status_changed_at"), "status_changed_at: missing"),
        ("deployment_hook", lambda p: p.update(commit_url=None, short_sha=None), "commit_url: missing"),
    ],
)
def test_malformed_ci_payload_raises_payload_error(fixture: str, mutate: Any, message: str) -> None:
    payload = docs(fixture)
    mutate(payload)

    with pytest.raises(PayloadError, match=message):
        parse_webhook(DOCS_HEADERS[fixture], payload)


@pytest.mark.parametrize("payload", [None, [], "text", 42])
def test_payload_that_is_not_an_object_raises_payload_error(payload: Any) -> None:
    with pytest.raises(PayloadError, match="payload: expected an object"):
        parse_webhook("Merge Request Hook", payload)


def test_service_hook_without_object_kind_raises_payload_error() -> None:
    with pytest.raises(PayloadError, match="object_kind: missing"):
        parse_webhook("Service Hook", {"object_attributes": {}})


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:2]):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


@pytest.mark.parametrize(
    ("header", "name", "loader"),
    [(None, name, shared) for name in SHARED_NAMES] + [(DOCS_HEADERS[name], name, docs) for name in DOCS_NAMES],
)
def test_no_damage_to_a_payload_escapes_as_anything_but_payload_error(
    header: str | None, name: str, loader: Any
) -> None:
    original = loader(name)
    header = header or header_for(name, original)
    for path in _paths(original):
        replacements: tuple[Any, ...] = (None, 42, "x", [], {}, True)
        for replacement in replacements:
            payload = copy.deepcopy(original)
            target = payload
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = replacement
            with contextlib.suppress(PayloadError):  # the only acceptable failure: anything else fails the test
                parse_webhook(header, payload)


# --- timestamps, bots, tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-08-05 21:48:25 UTC", utc(2025, 8, 5, 21, 48, 25)),
        ("2017-12-10T17:01:11Z", utc(2017, 12, 10, 17, 1, 11)),
        ("2013-12-03T17:23:34+00:00", utc(2013, 12, 3, 17, 23, 34)),
        ("2017-12-10T08:28:36-08:00", utc(2017, 12, 10, 16, 28, 36)),
        ("2021-04-28 21:50:00 +0200", utc(2021, 4, 28, 19, 50)),
        ("2021-02-23T02:41:37.886Z", dt.datetime(2021, 2, 23, 2, 41, 37, 886000, tzinfo=dt.UTC)),
        ("2022-05-13T07:26:38.402123456Z", dt.datetime(2022, 5, 13, 7, 26, 38, 402123, tzinfo=dt.UTC)),
        ("2016-08-12 15:23:28", utc(2016, 8, 12, 15, 23, 28)),
        ("2012-01-03T23:36:29+0530", utc(2012, 1, 3, 18, 6, 29)),
    ],
)
def test_every_gitlab_timestamp_spelling_becomes_aware_utc(text: str, expected: dt.datetime) -> None:
    parsed = parse_timestamp(text)

    assert parsed == expected
    assert parsed.tzinfo is dt.UTC


@pytest.mark.parametrize("text", ["", "yesterday", "2021-02-30T00:00:00Z", "2021-02-03T25:00:00Z", "1700000000"])
def test_nonsense_timestamps_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


@pytest.mark.parametrize(
    "username",
    [
        "project_123_bot_0d8f1c2b3a4e5f6a7b8c9d0e1f2a3b4c",
        "project_42_bot1",
        "group_7_bot_5e4d3c2b1a",
        "service_account_group_7_0a1b2c",
        "ghost",
        "renovate-bot",
        "support-bot",
        "release_bot",
        "dependabot[bot]",
    ],
)
def test_gitlab_bot_usernames_are_bots(username: str) -> None:
    assert is_bot(username)


@pytest.mark.parametrize("username", ["talbot", "abbott", "robotnik", "project_manager", "ghostwriter", "bot.tom"])
def test_people_with_bot_like_names_are_not_bots(username: str) -> None:
    assert not is_bot(username)


def test_user_marked_bot_is_a_bot_whatever_its_name() -> None:
    payload = shared("note_mr_real.json")
    payload["user"]["bot"] = True

    [comment] = parse_webhook("Note Hook", payload).comments

    assert comment.author.is_bot is True


def test_matching_token_verifies() -> None:
    assert verify_token("s3cret-token", "s3cret-token") is True


@pytest.mark.parametrize("header", [None, "", "s3cret", "s3cret-token ", "S3CRET-TOKEN"])
def test_other_tokens_do_not_verify(header: str | None) -> None:
    assert verify_token("s3cret-token", header) is False


def test_no_configured_secret_verifies_nothing() -> None:
    assert verify_token("", "") is False
    assert verify_token("", "anything") is False
