"""Production's side of the loop: services, deployments and what they shipped, incidents, the changes
suspected of causing them, and the notices sent to the people involved.

Depends on `reviews` (a deployment ships pull requests), never the reverse.
"""

from __future__ import annotations

from typing import ClassVar

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from reviews.models import ApiToken, AppendOnlyModel, Commit, Person, PullRequest, Repository, Team


class Service(models.Model):
    """Something that is deployed. It points at the repositories (and paths inside them) it is built from:
    one service may span several repositories, and a monorepo may hold several services."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="services")
    repositories = models.ManyToManyField(Repository, through="ServiceRepository", related_name="services")
    incident_keys = models.JSONField(
        default=list,
        blank=True,
        help_text='How incident tools name it, e.g. ["pagerduty:PF9KMXH", "opsgenie:checkout"]. Its slug always '
        "matches too.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ServiceRepository(models.Model):
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="service_repositories")
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="service_links")
    path_filters = models.JSONField(
        default=list, blank=True, help_text='Globs inside the repository, e.g. ["services/payments/**"]. Empty: all.'
    )

    class Meta:
        verbose_name_plural = "service repositories"
        constraints = [models.UniqueConstraint(fields=["service", "repository"], name="service_repository_unique")]

    def __str__(self) -> str:
        return f"{self.service} ← {self.repository}"


class Deployment(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_PROGRESS = "in_progress", "In progress"
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        ERROR = "error", "Error"
        CANCELED = "canceled", "Canceled"

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="deployments")
    environment = models.CharField(max_length=100, default="production")
    repository = models.ForeignKey(
        Repository, null=True, blank=True, on_delete=models.SET_NULL, related_name="deployments"
    )
    sha = models.CharField(max_length=64)
    ref = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    source = models.CharField(max_length=20, help_text="api / github / gitlab / demo")
    external_id = models.CharField(max_length=200)
    url = models.URLField(max_length=1000, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Set when a lead confirms one of its changes caused an incident: counts in the change failure rate.
    caused_incident = models.BooleanField(default=False)
    # A whole-monorepo deployment recorded for each of the repository's services: it counts for a service only
    # when it shipped a change under that service's path filters.
    path_scoped = models.BooleanField(default=False)
    source_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="The source's time for the state stored: older reports never overwrite it."
    )
    changes_linked_at = models.DateTimeField(null=True, blank=True)
    link_method = models.CharField(
        max_length=20, blank=True, help_text="How its changes were found: graph / compare / merge_order / none."
    )
    # Why the link is not the whole truth, or why it found nothing: never "linked, 0 changes" without a word.
    link_error = models.TextField(blank=True)
    compared = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the VCS compare said when it was last asked: base, head, ETag and the commits' shas.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "external_id"], name="deployment_unique_external")]
        indexes = [
            models.Index(fields=["service", "finished_at"], name="deploy_service_finished_idx"),
            models.Index(fields=["service", "environment", "status", "finished_at"], name="deploy_env_status_idx"),
            models.Index(fields=["finished_at"], name="deploy_finished_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.service} {self.environment} @ {self.sha[:12]}"


class DeploymentChange(models.Model):
    """A commit a deployment shipped, and the pull request that merged it (when there is one).

    No commit when the commits are unknown (found by merge order): then the row names the pull request alone.
    """

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="changes")
    commit = models.ForeignKey(
        Commit, null=True, blank=True, on_delete=models.CASCADE, related_name="deployment_changes"
    )
    pull_request = models.ForeignKey(
        PullRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="deployment_changes"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "commit"], condition=Q(commit__isnull=False), name="deployment_change_unique"
            ),
            models.UniqueConstraint(
                fields=["deployment", "pull_request"],
                condition=Q(commit__isnull=True),
                name="deployment_change_unique_pr",
            ),
        ]
        indexes = [models.Index(fields=["pull_request"], name="deploy_change_pr_idx")]

    def __str__(self) -> str:
        return f"{self.deployment} ships {self.commit}"


class Incident(models.Model):
    class Severity(models.TextChoices):
        SEV1 = "sev1", "SEV1 (critical)"
        SEV2 = "sev2", "SEV2 (major)"
        SEV3 = "sev3", "SEV3 (minor)"
        SEV4 = "sev4", "SEV4 (low)"

    class Status(models.TextChoices):
        TRIGGERED = "triggered", "Triggered"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    title = models.CharField(max_length=500)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.SEV3)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.TRIGGERED)
    services = models.ManyToManyField(Service, blank=True, related_name="incidents")
    source = models.CharField(max_length=20, help_text="api / pagerduty / opsgenie / demo")
    external_id = models.CharField(max_length=200)
    url = models.URLField(max_length=1000, blank=True)
    started_at = models.DateTimeField()
    detected_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    source_updated_at = models.DateTimeField(null=True, blank=True)
    correlated_at = models.DateTimeField(null=True, blank=True, help_text="When its suspects were last ranked.")
    correlation_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "external_id"], name="incident_unique_external")]
        indexes = [
            models.Index(fields=["started_at"], name="incident_started_idx"),
            models.Index(fields=["resolved_at"], name="incident_resolved_idx"),
        ]

    def __str__(self) -> str:
        return self.title


class SuspectChange(models.Model):
    """A pull request that may have caused an incident, with its score and the reasons in words."""

    class Verdict(models.TextChoices):
        SUSPECTED = "suspected", "Suspected"
        CONFIRMED = "confirmed", "Confirmed cause"
        REJECTED = "rejected", "Rejected"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="suspects")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="suspects")
    pull_request = models.ForeignKey(PullRequest, on_delete=models.CASCADE, related_name="suspicions")
    score = models.FloatField()
    rank = models.PositiveIntegerField()
    reasons = models.JSONField(default=list)
    verdict = models.CharField(max_length=20, choices=Verdict.choices, default=Verdict.SUSPECTED)
    decided_by = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    # The team's chat webhook is told once per confirmed cause (telemetry.services.chat). The database holds the
    # pending notice: it is due at `chat_next_attempt_at` (null: nothing to send, or given up); `chat_sending_since`
    # is set and committed before each send, so a send whose outcome nobody recorded is never repeated.
    chat_notified_at = models.DateTimeField(null=True, blank=True)
    chat_error = models.TextField(blank=True)
    chat_attempts = models.PositiveIntegerField(default=0)
    chat_next_attempt_at = models.DateTimeField(null=True, blank=True)
    chat_sending_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["incident", "rank"]
        constraints = [models.UniqueConstraint(fields=["incident", "pull_request"], name="suspect_unique")]
        indexes = [
            models.Index(fields=["verdict"], name="suspect_verdict_idx"),
            models.Index(
                fields=["chat_next_attempt_at"],
                condition=models.Q(chat_next_attempt_at__isnull=False),
                name="suspect_chat_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pull_request} for {self.incident} (#{self.rank})"


class SuspectVerdict(AppendOnlyModel):
    """One decision on a suspect, on the record: confirmed or rejected, by whom (a lead, or a token of the team),
    when. The suspect's `verdict` is the newest of these; a change of mind is a new decision."""

    suspect = models.ForeignKey(SuspectChange, on_delete=models.PROTECT, related_name="decisions")
    verdict = models.CharField(max_length=20, choices=SuspectChange.Verdict.choices)
    decided_by = models.ForeignKey(Person, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.suspect} {self.verdict}"


class Notification(models.Model):
    """A notice to one person, shown to them in Tandem (and sent to the team's chat webhook when set)."""

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=50)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.CASCADE)
    pull_request = models.ForeignKey(PullRequest, null=True, blank=True, on_delete=models.CASCADE)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["person", "kind", "incident", "pull_request"], name="notification_unique_per_cause"
            )
        ]
        indexes = [models.Index(fields=["person", "read_at"], name="notification_person_idx")]

    def __str__(self) -> str:
        return self.subject


# --- alerts on the team's own telemetry, and the weekly digest ----------------------------------------------------

ALERT_FIGURES = (
    ("time_to_first_review", "Time to first review"),
    ("pickup_time", "Pickup time"),
    ("unreviewed_share", "Unreviewed merges"),
    ("rubber_stamp_share", "Rubber-stamp approvals"),
    ("review_coverage", "Review coverage"),
    ("change_failure_rate", "Change failure rate"),
    ("deployment_frequency", "Deployment frequency"),
    ("time_to_restore", "Time to restore"),
)
ALERT_DEVIATIONS_RANGE = (1.5, 10.0)
ALERT_SUSTAINED_DAYS_RANGE = (1, 14)
ALERT_BASELINE_WEEKS_RANGE = (4, 26)


class AlertSettings(models.Model):
    """How sensitive a team's alerts are (telemetry.drift). A team without a row has the defaults."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="alert_settings")
    enabled = models.BooleanField(default=True, help_text="Off: no new alerts; open ones still close on recovery.")
    deviations = models.FloatField(
        default=3.0,
        validators=[MinValueValidator(ALERT_DEVIATIONS_RANGE[0]), MaxValueValidator(ALERT_DEVIATIONS_RANGE[1])],
        help_text="How far from the baseline a day must be, in robust deviations (MAD × 1.4826). Lower: more alerts.",
    )
    sustained_days = models.PositiveSmallIntegerField(
        default=3,
        validators=[
            MinValueValidator(ALERT_SUSTAINED_DAYS_RANGE[0]),
            MaxValueValidator(ALERT_SUSTAINED_DAYS_RANGE[1]),
        ],
        help_text="For how many checked days in a row. Lower: sooner, and more false alarms.",
    )
    baseline_weeks = models.PositiveSmallIntegerField(
        default=8,
        validators=[
            MinValueValidator(ALERT_BASELINE_WEEKS_RANGE[0]),
            MaxValueValidator(ALERT_BASELINE_WEEKS_RANGE[1]),
        ],
        help_text="How many earlier weeks the baseline is made of.",
    )

    class Meta:
        verbose_name_plural = "alert settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(deviations__gte=ALERT_DEVIATIONS_RANGE[0], deviations__lte=ALERT_DEVIATIONS_RANGE[1]),
                name="alert_settings_deviations_range",
            ),
            models.CheckConstraint(
                condition=Q(
                    sustained_days__gte=ALERT_SUSTAINED_DAYS_RANGE[0], sustained_days__lte=ALERT_SUSTAINED_DAYS_RANGE[1]
                ),
                name="alert_settings_days_range",
            ),
            models.CheckConstraint(
                condition=Q(
                    baseline_weeks__gte=ALERT_BASELINE_WEEKS_RANGE[0], baseline_weeks__lte=ALERT_BASELINE_WEEKS_RANGE[1]
                ),
                name="alert_settings_weeks_range",
            ),
        ]

    def __str__(self) -> str:
        return f"alerts of {self.team}: {self.deviations} deviations for {self.sustained_days} days"


class FigureDay(models.Model):
    """One team's samples of one figure on one (local) day, as the alerting run computed them from the same
    selectors as the team page: (id, value) items (telemetry.drift). Derived data, recomputed for recent days."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    figure = models.CharField(max_length=40, choices=ALERT_FIGURES)
    day = models.DateField()
    items = models.JSONField(default=list)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "figure", "day"], name="figure_day_unique")]
        indexes = [models.Index(fields=["day"], name="figure_day_day_idx")]

    def __str__(self) -> str:
        return f"{self.team} {self.figure} {self.day}"


class ChatNotice(models.Model):
    """A notice owed to the team's chat webhook, sent at most once with backoff (telemetry.services.chat): the same
    fields as on SuspectChange."""

    chat_notified_at = models.DateTimeField(null=True, blank=True)
    chat_error = models.TextField(blank=True)
    chat_attempts = models.PositiveIntegerField(default=0)
    chat_next_attempt_at = models.DateTimeField(null=True, blank=True)
    chat_sending_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


CHAT_FIELDS = frozenset(
    {"chat_notified_at", "chat_error", "chat_attempts", "chat_next_attempt_at", "chat_sending_since"}
)


class TeamAlert(ChatNotice, AppendOnlyModel):
    """A sustained departure of one of a team's figures from its own baseline, with the figures and the pull
    requests, deployments or incidents behind it. One open alert per team and figure (a constraint); recovery
    closes it, on the record; a lead acknowledges it. Never deleted."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="alerts")
    figure = models.CharField(max_length=40, choices=ALERT_FIGURES)
    direction = models.CharField(max_length=4, help_text="up / down: the way it moved (the bad way).")
    opened_at = models.DateTimeField(default=timezone.now)
    first_day = models.DateField(help_text="The first of the days that departed.")
    last_day = models.DateField(help_text="The last day judged when it was raised.")
    value = models.FloatField(help_text="The figure over the departing days (median of their values).")
    baseline = models.FloatField(help_text="The baseline's median.")
    scale = models.FloatField(help_text="The baseline's robust deviation (floored).")
    departure = models.FloatField(help_text="How many deviations away, on the latest day.")
    samples = models.PositiveIntegerField(help_text="Samples behind the latest day's value.")
    deviations = models.FloatField(help_text="The team's threshold then.")
    sustained_days = models.PositiveSmallIntegerField(help_text="The team's number of days then.")
    days = models.JSONField(default=list, help_text="Each departing day: value, baseline, scale, departure, samples.")
    evidence_kind = models.CharField(max_length=20, help_text="pull_request / deployment / incident")
    evidence = models.JSONField(default=list, help_text="[[id, value], ...]: worst first.")
    closed_at = models.DateTimeField(null=True, blank=True)
    recovered = models.BooleanField(
        null=True,
        blank=True,
        help_text="How it closed: back within the baseline it was raised against (yes), or the change lasted and "
        "became the new baseline (no).",
    )
    closing_value = models.FloatField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(Person, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    acknowledged_by_token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    mutable_fields = CHAT_FIELDS
    set_once_fields = frozenset(
        {"closed_at", "recovered", "closing_value", "acknowledged_at", "acknowledged_by", "acknowledged_by_token"}
    )

    class Meta(AppendOnlyModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["team", "figure"], condition=Q(closed_at__isnull=True), name="team_alert_one_open"
            )
        ]
        indexes = [
            models.Index(fields=["team", "-opened_at"], name="team_alert_team_idx"),
            models.Index(
                fields=["chat_next_attempt_at"],
                condition=Q(chat_next_attempt_at__isnull=False),
                name="team_alert_chat_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.team}: {self.get_figure_display()} since {self.first_day}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class AlertClosedNotice(ChatNotice):
    """The chat notice that an alert closed (its figure recovered, or the change lasted and became the baseline):
    one per alert, made in the transaction that closes it, sent at most once with backoff like every chat notice."""

    alert = models.OneToOneField(TeamAlert, on_delete=models.PROTECT, related_name="closed_notice")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(
                fields=["chat_next_attempt_at"],
                condition=Q(chat_next_attempt_at__isnull=False),
                name="alert_closed_chat_due_idx",
            )
        ]

    def __str__(self) -> str:
        return f"closed notice of {self.alert}"


class WeeklyDigest(ChatNotice):
    """The digest of one team's week, built once and kept as sent: to the chat webhook (at most once) and by
    e-mail to the members with an address (claimed before sending: at most once)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="digests")
    week = models.DateField(help_text="The Monday of the week it covers.")
    built_at = models.DateTimeField(default=timezone.now)
    subject = models.CharField(max_length=300)
    text = models.TextField()
    email_recipients = models.JSONField(default=list, blank=True)
    email_sending_since = models.DateTimeField(null=True, blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    email_error = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "week"], name="weekly_digest_unique")]
        indexes = [
            models.Index(
                fields=["chat_next_attempt_at"],
                condition=Q(chat_next_attempt_at__isnull=False),
                name="digest_chat_due_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.team} digest, week of {self.week}"


class DeployCheck(AppendOnlyModel):
    """A deploy check as it was answered: the batch a deployment of this sha would ship, its risk level, the
    decision under the team's policy and the reasons in words. Written once. `deployment` is set once, when a
    deployment of the same service, environment and sha is reported; a GitHub deployment protection rule's answer
    (`callback_url`) is bookkeeping: when it was accepted, the last error, the attempts."""

    mutable_fields: ClassVar[frozenset[str]] = frozenset({"answer_error", "answer_attempts"})
    set_once_fields: ClassVar[frozenset[str]] = frozenset({"deployment", "answered_at"})

    class Level(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    class Decision(models.TextChoices):
        ALLOW = "allow", "Allow"
        WARN = "warn", "Warn"
        BLOCK = "block", "Block"

    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="deploy_checks")
    environment = models.CharField(max_length=100)
    sha = models.CharField(max_length=64)
    repository = models.ForeignKey(Repository, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    level = models.CharField(max_length=10, choices=Level.choices)
    decision = models.CharField(max_length=10, choices=Decision.choices)
    reasons = models.JSONField(default=list, help_text="The overall reasons: [{code, text}].")
    pull_requests = models.JSONField(default=list, help_text="The batch: [{id, repository, number, title, reasons}].")
    link_method = models.CharField(max_length=20, blank=True)
    link_note = models.TextField(blank=True)
    source = models.CharField(max_length=30, default="api", help_text="api / github_protection_rule")
    token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    checked_at = models.DateTimeField(default=timezone.now)
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.PROTECT, related_name="deploy_checks"
    )
    # The key: the URL GitHub sent with its deployment, the environment (100), the service's slug (50), the attempt.
    callback_url = models.URLField(max_length=1000, blank=True, help_text="Where a protection rule is answered.")
    callback_key = models.CharField(
        max_length=1300, blank=True, help_text="The protection rule request it answers (one check per request)."
    )
    answered_at = models.DateTimeField(null=True, blank=True)
    answer_error = models.TextField(blank=True)
    answer_attempts = models.PositiveIntegerField(default=0)

    class Meta(AppendOnlyModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["callback_key"], condition=~Q(callback_key=""), name="deploy_check_unique_callback"
            )
        ]
        indexes = [
            models.Index(fields=["service", "environment", "sha", "checked_at"], name="deploy_check_key_idx"),
            models.Index(fields=["deployment"], name="deploy_check_deployment_idx"),
            # Beat's re-check of protection rules left waiting reads these every 30 s: few rows in a large table.
            models.Index(
                fields=["checked_at"],
                condition=Q(answered_at__isnull=True) & ~Q(callback_key=""),
                name="deploy_check_waiting_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"check {self.service} {self.environment} @ {self.sha[:12]}: {self.level}/{self.decision}"
