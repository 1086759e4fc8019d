"""GitHub's custom deployment protection rules, answered by the deploy check.

A GitHub App installed on a repository can be a protection rule of its environments: before a workflow job
deploys to one, GitHub sends `deployment_protection_rule` (action `requested`) with the sha and a callback URL,
and waits for the App to approve or reject (`POST /repos/{owner}/{repo}/actions/runs/{run_id}/
deployment_protection_rule`). Tandem checks the deployment of that sha for each service the repository deploys
to that environment (`deploy_check`, recorded like any other check), then answers from a task, never in the
request path: rejected when a check's decision is `block`; approved when every check saw what the deployment ships.
A check that could not tell (a sha not synced yet, another repository's, a batch guessed from merge order) is "not
yet": GitHub's request is left waiting, and `protection_rules_recheck` (beat) checks again as soon as the sha is
known and on a backoff (RECHECK_AFTER_MINUTES), each time as a new recorded check. Still unknown after
`PROTECTION_RULE_WAIT_MINUTES`, the request is rejected with the reason (fail closed: an unseen batch is never
approved). Only a connection that acts as a GitHub App answers (GitHub sends the event to Apps alone).

Idempotent: one check per request, service and attempt (`callback_key`, unique: a re-check that two beat runs
race for is made once, and only the run that made it may queue the answer), and the answer is sent until GitHub
accepts it once (`answered_at`); a redelivered event or a retried task sends nothing more.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from reviews.integrations.records import WebhookEvent
from reviews.integrations.vcs import GitHubVcs, VcsError
from reviews.models import Repository
from reviews.services.credentials import connection_app, vcs_client_for
from telemetry.models import DeployCheck
from telemetry.services.deploy_check import NOT_KNOWN, RANK, deploy_check, sha_known
from telemetry.services.deployments import deployment_services_for, full_sha, repository_for_sha
from telemetry.services.enqueue import protection_rule_answer_enqueue

SOURCE = "github_protection_rule"
COMMENT_LIMIT = 1000  # GitHub keeps a short comment with the review
UNSEEN_BATCH = (
    "Rejected because Tandem could not see what this deployment ships within {minutes} minutes of the request; "
    "re-run the job once Tandem has synced the repository (webhooks bring a push within seconds)."
)
# Minutes after the request at which a check that could not tell is made again (besides as soon as the sha is known).
RECHECK_AFTER_MINUTES = (1, 2, 4, 8, 16, 32)
FINAL = "final"
UNKNOWN_COMMIT = ("unknown_repository", "unknown_sha")
# GitHub gives up on a request after 30 days: until then a waiting one is re-checked, whenever beat comes back.
GITHUB_REQUEST_DAYS = 30
_RUN = re.compile(r"/repos/[^/]+/[^/]+/actions/runs/(?P<run_id>\d+)/deployment_protection_rule(?:\?deployment=\d+)?$")
_ATTEMPT = re.compile(r"#(?:recheck-\d+|final)$")


class ProtectionRuleError(VcsError):
    """The request cannot be answered as it stands (a callback URL that is not GitHub's review endpoint)."""


def protection_rules_from_webhook(repository: Repository, event: WebhookEvent) -> None:
    """The handler registered in `reviews.services.webhooks.protection_rule_handlers`."""
    if connection_app(repository.connection) is None:
        return
    for rule in event.protection_rules:
        # One request per deployment: a job run again after an answer is asked about anew under the same run's URL.
        callback_url = (
            f"{rule.callback_url}?deployment={rule.deployment_id}" if rule.deployment_id else rule.callback_url
        )
        services, environment, _ = deployment_services_for(repository=repository, environment=rule.environment)
        for service in services:
            key = f"{callback_url}#{rule.environment}#{service.slug}"
            if not DeployCheck.objects.filter(callback_key=key).exists():
                deploy_check(
                    service=service,
                    environment=environment,
                    sha=rule.sha,
                    ref=rule.ref,
                    source=SOURCE,
                    callback_url=callback_url,
                    callback_key=key,
                )
        request = _request_checks(callback_url, rule.environment)
        if request and not _answered(request) and _decided(_latest(request)):
            protection_rule_answer_enqueue(check_id=request[0].pk)


def protection_rules_recheck(*, now: dt.datetime | None = None) -> int:
    """Check again the requests left waiting because a check could not tell what the deployment ships: as soon as
    the sha is known, else on the backoff; past the wait, once more and then answer whatever it says. Returns the
    number of answers queued."""
    now = now or timezone.now()
    wait = dt.timedelta(minutes=settings.PROTECTION_RULE_WAIT_MINUTES)
    horizon = now - dt.timedelta(days=GITHUB_REQUEST_DAYS)
    waiting = (
        DeployCheck.objects.filter(source=SOURCE, answered_at__isnull=True, checked_at__gte=horizon)
        .exclude(callback_key="")
        .select_related("service", "repository")
        .order_by("pk")
    )
    requests: dict[tuple[str, str], list[DeployCheck]] = {}
    for check in waiting:
        requests.setdefault((check.callback_url, _environment(check)), []).append(check)
    queued = 0
    for checks in requests.values():
        latest = _latest(checks)
        if _decided(latest):
            continue  # its answer was queued when it was decided
        final = now - checks[0].checked_at >= wait
        made = [made for check in latest if (made := _recheck(check, checks, now=now, final=final)) is not None]
        if made and (final or _decided(_latest([*checks, *made]))):
            protection_rule_answer_enqueue(check_id=checks[0].pk)
            queued += 1
    return queued


def _recheck(check: DeployCheck, request: list[DeployCheck], *, now: dt.datetime, final: bool) -> DeployCheck | None:
    """A new check of one service, when it could not tell and one is due; None when none is due, or when another
    run made the same attempt first."""
    if _approvable(check) or check.decision == DeployCheck.Decision.BLOCK or check.callback_key.endswith(FINAL):
        return None  # decided, or the last check was made (its answer's task retries, not beat)
    attempts = sum(1 for member in request if member.service_id == check.service_id) - 1
    if final:
        suffix = FINAL
    else:
        if not _backoff_due(check, attempts, now=now) and not _now_known(check):
            return None  # the sha is known at once even after the last backoff step
        suffix = f"recheck-{attempts + 1}"
    base = _ATTEMPT.sub("", check.callback_key)
    try:
        with transaction.atomic():
            return deploy_check(
                service=check.service,
                environment=check.environment,
                sha=check.sha,
                source=SOURCE,
                callback_url=check.callback_url,
                callback_key=f"{base}#{suffix}",
                now=now,
            )
    except IntegrityError:
        return None  # another run made this attempt


def _backoff_due(check: DeployCheck, attempts: int, *, now: dt.datetime) -> bool:
    if attempts >= len(RECHECK_AFTER_MINUTES):
        return False
    # Measured from the previous attempt, so that a beat that was down does not make the missed ones at once.
    step = RECHECK_AFTER_MINUTES[attempts] - (RECHECK_AFTER_MINUTES[attempts - 1] if attempts else 0)
    return now >= check.checked_at + dt.timedelta(minutes=step)


def _now_known(check: DeployCheck) -> bool:
    """A check that did not know the sha (or its repository) can tell now: the sync brought the commit."""
    if not any(reason.get("code") in UNKNOWN_COMMIT for reason in check.reasons):
        return False
    repository = check.repository or repository_for_sha(service=check.service, sha=check.sha)
    return repository is not None and sha_known(repository, full_sha(repository=repository, sha=check.sha))


def protection_rule_answer(*, check_id: int) -> str:
    """Send GitHub the answer of the checks of one protection rule request, unless it was accepted already.
    VcsUnavailable and VcsRateLimited propagate (the task retries); other errors are recorded and raised."""
    check = DeployCheck.objects.select_related("repository__connection").get(pk=check_id)
    environment = _environment(check)
    group = _request_checks(check.callback_url, environment)
    if _answered(group):
        return "answered already"
    latest = _latest(group)
    approved = all(_approvable(member) for member in latest)
    match = _RUN.search(check.callback_url)
    if match is None or check.repository is None:
        raise ProtectionRuleError(f"not a GitHub deployment protection rule callback: {check.callback_url[:200]}")
    DeployCheck.objects.filter(pk__in=[m.pk for m in group]).update(answer_attempts=check.answer_attempts + 1)
    try:
        client = vcs_client_for(check.repository)
        try:
            if not isinstance(client, GitHubVcs):
                raise ProtectionRuleError("only GitHub answers deployment protection rules")
            client.review_deployment_protection_rule(
                check.repository.full_path,
                int(match["run_id"]),
                environment=environment,
                approved=approved,
                comment=comment_for(latest),
            )
        finally:
            client.close()
    except Exception as error:
        DeployCheck.objects.filter(pk__in=[m.pk for m in group]).update(answer_error=str(error)[:1000])
        raise
    with transaction.atomic():
        DeployCheck.objects.filter(pk__in=[m.pk for m in group]).update(answered_at=timezone.now(), answer_error="")
    return "approved" if approved else "rejected"


def _request_checks(callback_url: str, environment: str) -> list[DeployCheck]:
    """Every check made for one protection rule request and environment, each attempt of each service, oldest first."""
    prefix = f"{callback_url}#{environment}#"
    return list(
        DeployCheck.objects.filter(source=SOURCE, callback_url=callback_url, callback_key__startswith=prefix)
        .select_related("service", "repository")
        .order_by("pk")
    )


def _latest(checks: Iterable[DeployCheck]) -> list[DeployCheck]:
    """The newest attempt of each service's check."""
    newest: dict[int, DeployCheck] = {}
    for check in checks:
        if check.service_id not in newest or check.pk > newest[check.service_id].pk:
            newest[check.service_id] = check
    return sorted(newest.values(), key=lambda c: c.pk)


def _environment(check: DeployCheck) -> str:
    """The environment as GitHub named it in the request (the key keeps it; the check's own is normalised)."""
    rest = _ATTEMPT.sub("", check.callback_key[len(check.callback_url) + 1 :])
    return rest.rsplit("#", 1)[0]


def _answered(checks: list[DeployCheck]) -> bool:
    return bool(checks) and all(check.answered_at is not None for check in checks)


def _decided(latest: list[DeployCheck]) -> bool:
    """A request can be answered now: a check says block, or every check saw what the deployment ships."""
    return any(c.decision == DeployCheck.Decision.BLOCK for c in latest) or all(_approvable(c) for c in latest)


def _approvable(check: DeployCheck) -> bool:
    """Approve only what the check saw: a `block`, or a batch it could not tell, is never approved."""
    if check.decision == DeployCheck.Decision.BLOCK:
        return False
    return not any(reason.get("code") in NOT_KNOWN for reason in check.reasons)


def comment_for(checks: list[DeployCheck]) -> str:
    """The level, decision and reasons of each service's check, in words, within GitHub's limit."""
    parts = []
    for check in sorted(checks, key=lambda c: (-RANK[c.level], c.service.slug)):
        reasons = " ".join(reason["text"] for reason in check.reasons) or "No risk found."
        parts.append(f"Tandem deploy check for {check.service.slug}: {check.level} risk, {check.decision}. {reasons}")
        if check.decision != DeployCheck.Decision.BLOCK and not _approvable(check):
            parts.append(UNSEEN_BATCH.format(minutes=f"{settings.PROTECTION_RULE_WAIT_MINUTES:g}"))
    text = "\n".join(parts)
    return text if len(text) <= COMMENT_LIMIT else text[: COMMENT_LIMIT - 1] + "…"
