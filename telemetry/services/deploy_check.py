"""Risk before a deploy: what a deployment of a sha would ship, how risky that is, and what the team's policy says.

The batch is what linking would find for a deployment of the sha finished now (`linking.deployment_shipment`, the
same code, nothing written, the VCS never asked). Each pull request carries its reasons; the check's level is the
highest of all reasons (low when there is none) and the decision follows the team's policy
(`deploy: {block_on: high, warn_on: medium}`, the defaults). Reasons, each with its level:

- weakly reviewed (medium), by the one set of definitions (`reviews.selectors.review_facts`, overrides and
  violations on the record): merged with no approval that counted and no pairing partner; overridden with the
  follow-up review still owed; every approval that counted a rubber stamp; merged in violation of its policy;
- incident history (medium): a changed file under the paths of a confirmed incident cause in the repository
  (`RiskSignal`) within the policy's `risk.incident_window_days` (14), or a confirmed cause on the service
  itself in that window; a weakly reviewed change to such a file is high;
- an unusual batch (medium): more pull requests than the 90th percentile of the service's last 50 deployments
  to the environment (with at least 10 of them);
- an open incident on the service (medium; high when the batch holds a weakly reviewed change);
- fail closed (medium): a sha Tandem does not know, a service whose repository cannot be told, or a batch found
  by merge order only: unknown is not safe.

A fixed number of queries whatever the size of the batch or of the history. Every check is recorded
(`DeployCheck`), and attached to the deployment later reported with the same service, environment and sha.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from reviews.models import (
    ApiToken,
    ChangedFile,
    Commit,
    Override,
    Policy,
    PolicyViolation,
    PullRequest,
    Repository,
    RiskSignal,
)
from reviews.policy import DEFAULT_POLICY, PolicyError, parse_policy
from reviews.policy import Policy as ParsedPolicy
from reviews.policy.snapshot import RiskSignalRef
from reviews.selectors.overrides import pull_requests_overridden
from reviews.selectors.review_facts import NO_FACTS, ReviewFacts, pull_request_review_facts
from telemetry.models import DeployCheck, Deployment, DeploymentChange, Incident, Service, SuspectChange
from telemetry.services.deployments import full_sha, repository_for_sha
from telemetry.services.linking import chain_environments, deployment_shipment

LOW, MEDIUM, HIGH = DeployCheck.Level.LOW, DeployCheck.Level.MEDIUM, DeployCheck.Level.HIGH
RANK = {"low": 0, "medium": 1, "high": 2, "never": 3}
BATCH_HISTORY = 50
BATCH_HISTORY_MIN = 10
BATCH_PERCENTILE = 0.9
WEAK_REVIEW = ("unreviewed", "followup_due", "rubber_stamped", "policy_violation")
# What the check could not tell (the fail-closed reasons): never "allow", whatever thresholds the team set.
NOT_KNOWN = ("unknown_repository", "unknown_sha", "approximate_batch")


@dataclass(frozen=True)
class Reason:
    code: str
    level: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "level": self.level, "text": self.text}


def deploy_check(  # noqa: PLR0913 - what a caller knows about the deployment it is about to make
    *,
    service: Service,
    environment: str,
    sha: str,
    ref: str = "",
    token: ApiToken | None = None,
    source: str = "api",
    callback_url: str = "",
    callback_key: str = "",
    now: dt.datetime | None = None,
) -> DeployCheck:
    """Check a deployment of `sha` to `environment` of `service` before it is made, and record the answer."""
    now = now or timezone.now()
    environment = environment.strip().lower()
    policy = _team_policy(service)
    reasons: list[Reason] = []
    batch: list[dict[str, Any]] = []
    repository = repository_for_sha(service=service, sha=sha)
    sha = full_sha(repository=repository, sha=sha)
    link_method = link_note = ""
    if repository is None:
        reasons.append(Reason("unknown_repository", MEDIUM, _no_repository(service, sha)))
    elif not sha_known(repository, sha):
        reasons.append(
            Reason(
                "unknown_sha",
                MEDIUM,
                f"Tandem does not know commit {sha[:12]} in {repository.full_path} (not synced yet?): what it would "
                "ship cannot be told, so it is not known to be safe.",
            )
        )
    else:
        draft = Deployment(
            service=service,
            environment=environment,
            sha=sha,
            repository=repository,
            ref=ref,
            status=Deployment.Status.SUCCESS,
            started_at=now,
            finished_at=now,
        )
        shipment = deployment_shipment(draft, repository, allow_vcs=False)
        link_method, link_note = shipment.method, shipment.note
        if shipment.method == "merge_order":
            reasons.append(
                Reason("approximate_batch", MEDIUM, f"The batch is a guess from merge order: {shipment.note}")
            )
        window = dt.timedelta(days=policy.risk.incident_window_days)
        batch = _batch(repository, shipment.pull_request_ids, since=now - window, now=now)
        reasons += _batch_reasons(batch)
        reasons += _commits_without_pull_request(shipment.changes, shipment.previous is not None)
        reasons += _service_history(service, environment, len(batch), since=now - window)
    reasons += _open_incidents(service, weak=any(_weak(change) for change in batch))
    level = max((reason.level for reason in reasons), key=RANK.__getitem__, default=LOW)
    return DeployCheck.objects.create(
        service=service,
        environment=environment,
        sha=sha,
        repository=repository,
        level=level,
        decision=decision_for(level, policy, not_known=any(reason.code in NOT_KNOWN for reason in reasons)),
        reasons=[reason.as_dict() for reason in reasons],
        pull_requests=batch,
        link_method=link_method,
        link_note=link_note,
        source=source,
        token=token,
        checked_at=now,
        callback_url=callback_url,
        callback_key=callback_key,
    )


def decision_for(level: str, policy: ParsedPolicy, *, not_known: bool = False) -> str:
    """The policy's answer to the level. A batch the check could not tell is "not yet" (warn) at least: a team's
    `warn_on: high` or `never` quiets risks Tandem knows of, not what it does not know."""
    if RANK[level] >= RANK[policy.deploy.block_on]:
        return DeployCheck.Decision.BLOCK
    if RANK[level] >= RANK[policy.deploy.warn_on] or not_known:
        return DeployCheck.Decision.WARN
    return DeployCheck.Decision.ALLOW


def checks_attach(*, deployment: Deployment) -> int:
    """Attach the unattached checks of the deployment's service, environment and sha to it (once)."""
    return DeployCheck.objects.filter(
        service_id=deployment.service_id,
        environment=deployment.environment,
        sha=deployment.sha,
        deployment__isnull=True,
    ).update(deployment=deployment)


def _team_policy(service: Service) -> ParsedPolicy:
    if service.team_id is None:
        return DEFAULT_POLICY
    document = Policy.objects.filter(team_id=service.team_id).values_list("document", flat=True).first()
    if document is None:
        return DEFAULT_POLICY
    try:
        return parse_policy(document)
    except PolicyError:  # a stored policy was validated when saved: this is a policy from an older Tandem
        return DEFAULT_POLICY


def _no_repository(service: Service, sha: str) -> str:
    return (
        f"Cannot tell which of {service.slug}'s repositories holds {sha[:12]}: what it would ship cannot be told, "
        "so it is not known to be safe."
    )


def sha_known(repository: Repository, sha: str) -> bool:
    """Tandem has the commit `sha` of `repository` (synced, or the head or merge of a pull request)."""
    return (
        Commit.objects.filter(repository=repository, sha=sha).exists()
        or PullRequest.objects.filter(repository=repository).filter(Q(merge_commit_sha=sha) | Q(head_sha=sha)).exists()
    )


# --- the batch ----------------------------------------------------------------------------------------------------


def _batch(
    repository: Repository, pull_request_ids: list[int], *, since: dt.datetime, now: dt.datetime
) -> list[dict[str, Any]]:
    """Each pull request of the batch with its reasons, oldest merge first."""
    rows = list(
        PullRequest.objects.filter(pk__in=pull_request_ids)
        .order_by("merged_at", "pk")
        .values("pk", "number", "title", "web_url", "merged_at", "author__display_name")
    )
    ids = [row["pk"] for row in rows]
    facts = pull_request_review_facts(pull_request_ids=ids)
    overridden = pull_requests_overridden(pull_request_ids=ids)
    due = _followups_due(ids)
    violations = set(PolicyViolation.objects.filter(pull_request_id__in=ids).values_list("pull_request_id", flat=True))
    incident_files = _incident_files(repository, ids, since=since)
    batch = []
    for row in rows:
        pk = row["pk"]
        reasons = _review_reasons(
            facts.get(pk, NO_FACTS), due.get(pk), pk in violations, overridden=pk in overridden, now=now
        )
        touched = incident_files.get(pk, [])
        if touched:
            weak = bool(reasons)
            reasons.append(_incident_reason(touched, weak=weak))
        batch.append(
            {
                "id": pk,
                "repository": repository.full_path,
                "number": row["number"],
                "title": row["title"],
                "author": row["author__display_name"],
                "url": row["web_url"],
                "merged_at": row["merged_at"].isoformat() if row["merged_at"] else None,
                "reasons": [reason.as_dict() for reason in reasons],
            }
        )
    return batch


def _followups_due(ids: list[int]) -> dict[int, dt.datetime]:
    """Pull requests overridden (the override standing) whose follow-up review is still owed: when it is due."""
    due: dict[int, dt.datetime] = {}
    for pull_request_id, due_at in Override.objects.filter(
        pull_request_id__in=ids, withdrawal__isnull=True, followup_done_at__isnull=True
    ).values_list("pull_request_id", "followup_due_at"):
        due[pull_request_id] = min(due_at, due.get(pull_request_id, due_at))
    return due


def _review_reasons(
    facts: ReviewFacts, followup_due: dt.datetime | None, violation: bool, *, overridden: bool, now: dt.datetime
) -> list[Reason]:
    reasons = []
    if followup_due is not None:
        when = "overdue since" if followup_due < now else "due"
        reasons.append(
            Reason(
                "followup_due",
                MEDIUM,
                f"Overridden: merged without its policy met, and the follow-up review is still owed ({when} "
                f"{followup_due:%Y-%m-%d %H:%M} UTC).",
            )
        )
    if not facts.approvals and not facts.paired and not overridden:
        reasons.append(Reason("unreviewed", MEDIUM, "Unreviewed: merged with no approval that counted, not paired."))
    elif facts.approvals and not facts.paired and len(facts.rubber_stamps) == len(facts.approvals):
        reasons.append(
            Reason(
                "rubber_stamped",
                MEDIUM,
                "Rubber-stamped: every approval came within minutes of the last push, without a comment.",
            )
        )
    if violation:
        reasons.append(Reason("policy_violation", MEDIUM, "Merged in violation of its review policy."))
    return reasons


def _incident_files(repository: Repository, ids: list[int], *, since: dt.datetime) -> dict[int, list[str]]:
    """Per pull request, its changed files under the paths of a confirmed incident cause within the window."""
    signals = [
        RiskSignalRef(tuple(prefixes or ()), service_name, occurred_at, reference)
        for prefixes, service_name, occurred_at, reference in RiskSignal.objects.filter(
            repository=repository, occurred_at__gte=since
        ).values_list("path_prefixes", "service_name", "occurred_at", "reference")
    ]
    if not signals or not ids:
        return {}
    touched: dict[int, list[str]] = {}
    for pull_request_id, path in (
        ChangedFile.objects.filter(pull_request_id__in=ids).order_by("path").values_list("pull_request_id", "path")
    ):
        if any(signal.touches(path) for signal in signals):
            touched.setdefault(pull_request_id, []).append(path)
    return touched


def _incident_reason(paths: list[str], *, weak: bool) -> Reason:
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    if weak:
        return Reason(
            "weak_review_incident_files",
            HIGH,
            f"A weakly reviewed change to files a recent confirmed incident cause changed: {shown}.",
        )
    return Reason("incident_files", MEDIUM, f"Changes files a recent confirmed incident cause changed: {shown}.")


def _commits_without_pull_request(changes: frozenset[tuple[int | None, int | None]], since_known: bool) -> list[Reason]:
    """Commits the deployment ships that no merged pull request brought (pushed straight to the branch, or the head
    of a branch not merged): nobody reviewed them. Only after a previous deployment: a first one ships the whole
    history, its first commits included."""
    count = sum(1 for commit, pull_request in changes if commit is not None and pull_request is None)
    if not since_known or not count:
        return []
    noun = "commit ships" if count == 1 else "commits ship"
    return [
        Reason(
            "no_pull_request",
            MEDIUM,
            f"{count} {noun} without a merged pull request (pushed directly, or a branch not merged): not reviewed.",
        )
    ]


def _weak(change: dict[str, Any]) -> bool:
    return any(reason["code"] in WEAK_REVIEW for reason in change["reasons"])


def _batch_reasons(batch: list[dict[str, Any]]) -> list[Reason]:
    """The overall reasons the pull requests give, one per kind, with how many of them."""
    counts: dict[str, int] = {}
    levels: dict[str, str] = {}
    for change in batch:
        for reason in change["reasons"]:
            counts[reason["code"]] = counts.get(reason["code"], 0) + 1
            levels[reason["code"]] = reason["level"]
    words = {
        "unreviewed": "unreviewed",
        "followup_due": "overridden with the follow-up review still owed",
        "rubber_stamped": "rubber-stamped",
        "policy_violation": "merged in violation of the policy",
        "incident_files": "changing files of a recent confirmed incident cause",
        "weak_review_incident_files": "weakly reviewed and changing files of a recent confirmed incident cause",
    }
    reasons = []
    for code in sorted(counts, key=lambda code: (-RANK[levels[code]], code)):
        count = counts[code]
        noun = "pull request" if count == 1 else "pull requests"
        reasons.append(Reason(code, levels[code], f"{count} {noun} {words.get(code, code)}."))
    return reasons


# --- the service --------------------------------------------------------------------------------------------------


def _service_history(service: Service, environment: str, size: int, *, since: dt.datetime) -> list[Reason]:
    reasons = []
    cause = (
        SuspectChange.objects.filter(
            deployment__service=service, verdict=SuspectChange.Verdict.CONFIRMED, incident__started_at__gte=since
        )
        .order_by("-incident__started_at")
        .values_list("incident__title", "incident__started_at")
        .first()
    )
    if cause is not None:
        reasons.append(
            Reason(
                "service_incident",
                MEDIUM,
                f"{service.slug} had a confirmed incident cause recently: {cause[0]!r} ({cause[1]:%Y-%m-%d}).",
            )
        )
    usual = _usual_batch(service, environment)
    if usual is not None and size > usual:
        reasons.append(
            Reason(
                "unusual_batch",
                MEDIUM,
                f"An unusually large batch: {size} pull requests, where 90% of {service.slug}'s last "
                f"{BATCH_HISTORY} deployments to {environment} shipped {usual} or fewer.",
            )
        )
    return reasons


def _usual_batch(service: Service, environment: str) -> int | None:
    """The 90th percentile of the pull requests shipped by the service's last deployments to the environment
    (its chain), or None with too few of them to say."""
    recent = list(
        Deployment.objects.filter(
            service=service,
            environment__in=chain_environments(environment),
            status=Deployment.Status.SUCCESS,
            changes_linked_at__isnull=False,
        )
        .order_by("-finished_at", "-pk")
        .values_list("pk", flat=True)[:BATCH_HISTORY]
    )
    if len(recent) < BATCH_HISTORY_MIN:
        return None
    shipped = dict(
        DeploymentChange.objects.filter(deployment_id__in=recent, pull_request__isnull=False)
        .values("deployment_id")
        .annotate(count=Count("pull_request_id", distinct=True))
        .values_list("deployment_id", "count")
    )
    sizes = sorted(shipped.get(pk, 0) for pk in recent)
    return sizes[min(len(sizes) - 1, int(BATCH_PERCENTILE * len(sizes)))]


def _open_incidents(service: Service, *, weak: bool) -> list[Reason]:
    incident = (
        Incident.objects.filter(services=service, resolved_at__isnull=True)
        .exclude(status=Incident.Status.RESOLVED)
        .order_by("-started_at")
        .values_list("title", "severity", "started_at")
        .first()
    )
    if incident is None:
        return []
    title, severity, started = incident
    text = f"{service.slug} has an open incident: {title!r} ({severity}, since {started:%Y-%m-%d %H:%M} UTC)."
    if weak:
        return [Reason("open_incident", HIGH, f"{text} The batch holds weakly reviewed changes.")]
    return [Reason("open_incident", MEDIUM, text)]
