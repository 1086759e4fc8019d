"""GitHub's custom deployment protection rules, answered by the deploy check.

A GitHub App installed on a repository can be a protection rule of its environments: before a workflow job
deploys to one, GitHub sends `deployment_protection_rule` (action `requested`) with the sha and a callback URL,
and waits for the App to approve or reject (`POST /repos/{owner}/{repo}/actions/runs/{run_id}/
deployment_protection_rule`). Tandem checks the deployment of that sha for each service the repository deploys
to that environment (`deploy_check`, recorded like any other check), then answers from a task, never in the
request path: rejected when a check's decision is `block`, or when a check could not tell what the deployment ships
(a sha not synced yet, another repository's, a batch guessed from merge order: fail closed, an unseen batch is never
approved); approved otherwise, with the level and reasons as the comment. Only a connection that acts as a GitHub
App answers (GitHub sends the event to Apps alone).

Idempotent: one check per request and service (`callback_key`), and the answer is sent until GitHub accepts it
once (`answered_at`); a redelivered event or a retried task sends nothing more.
"""

from __future__ import annotations

import re

from django.db import transaction
from django.utils import timezone

from reviews.integrations.records import WebhookEvent
from reviews.integrations.vcs import GitHubVcs, VcsError
from reviews.models import Repository
from reviews.services.credentials import connection_app, vcs_client_for
from telemetry.models import DeployCheck
from telemetry.services.deploy_check import NOT_KNOWN, RANK, deploy_check
from telemetry.services.deployments import deployment_services_for
from telemetry.services.enqueue import protection_rule_answer_enqueue

SOURCE = "github_protection_rule"
COMMENT_LIMIT = 1000  # GitHub keeps a short comment with the review
UNSEEN_BATCH = (
    "Rejected because Tandem cannot yet see what this deployment ships; re-run the job once Tandem has synced "
    "the repository (webhooks bring a push within seconds)."
)
_RUN = re.compile(r"/repos/[^/]+/[^/]+/actions/runs/(?P<run_id>\d+)/deployment_protection_rule$")


class ProtectionRuleError(VcsError):
    """The request cannot be answered as it stands (a callback URL that is not GitHub's review endpoint)."""


def protection_rules_from_webhook(repository: Repository, event: WebhookEvent) -> None:
    """The handler registered in `reviews.services.webhooks.protection_rule_handlers`."""
    if connection_app(repository.connection) is None:
        return
    for rule in event.protection_rules:
        services, environment, _ = deployment_services_for(repository=repository, environment=rule.environment)
        first = None
        for service in services:
            key = f"{rule.callback_url}#{rule.environment}#{service.slug}"
            check = DeployCheck.objects.filter(callback_key=key).first()
            if check is None:
                check = deploy_check(
                    service=service,
                    environment=environment,
                    sha=rule.sha,
                    ref=rule.ref,
                    source=SOURCE,
                    callback_url=rule.callback_url,
                    callback_key=key,
                )
            first = first or check
        if first is not None and first.answered_at is None:
            protection_rule_answer_enqueue(check_id=first.pk)


def protection_rule_answer(*, check_id: int) -> str:
    """Send GitHub the answer of the checks of one protection rule request, unless it was accepted already.
    VcsUnavailable and VcsRateLimited propagate (the task retries); other errors are recorded and raised."""
    check = DeployCheck.objects.select_related("repository__connection").get(pk=check_id)
    group = list(
        DeployCheck.objects.filter(source=SOURCE, callback_url=check.callback_url)
        .filter(callback_key__startswith=f"{check.callback_url}#")
        .select_related("service")
        .order_by("pk")
    )
    if all(member.answered_at is not None for member in group):
        return "answered already"
    environment = check.callback_key[len(check.callback_url) + 1 :].rsplit("#", 1)[0]
    group = [member for member in group if member.callback_key.startswith(f"{check.callback_url}#{environment}#")]
    approved = all(_approvable(member) for member in group)
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
                comment=comment_for(group),
            )
        finally:
            client.close()
    except Exception as error:
        DeployCheck.objects.filter(pk__in=[m.pk for m in group]).update(answer_error=str(error)[:1000])
        raise
    with transaction.atomic():
        DeployCheck.objects.filter(pk__in=[m.pk for m in group]).update(answered_at=timezone.now(), answer_error="")
    return "approved" if approved else "rejected"


def _approvable(check: DeployCheck) -> bool:
    """Approve only what the check saw: a `block`, or a batch it could not tell, is rejected with the reasons."""
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
            parts.append(UNSEEN_BATCH)
    text = "\n".join(parts)
    return text if len(text) <= COMMENT_LIMIT else text[: COMMENT_LIMIT - 1] + "…"
