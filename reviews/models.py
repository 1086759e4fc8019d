"""The review side of Tandem: people and teams, VCS connections, repositories, pull requests and what
happens on them, webhook deliveries, review policies and pairing sessions.

Provider-neutral: a GitLab merge request is a PullRequest, a GitLab approval an approving Review, a note a
Comment. Unique constraints make every upsert idempotent; indexes follow what team pages and correlation
filter by.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from reviews.fields import EncryptedTextField
from reviews.validators import outbound_url_validate


class RecordImmutable(PermissionDenied):
    """A record of what was reviewed, overridden or followed up cannot be changed or erased: correct it with a new
    record that points at it."""


_M = TypeVar("_M", bound=models.Model)


class AppendOnlyQuerySet(models.QuerySet[_M]):
    """No bulk delete; bulk updates only of the model's bookkeeping and set-once fields (the latter only where
    still empty), so no surface (admin action, shell, service) can rewrite history with `.update()`."""

    def delete(self) -> tuple[int, dict[str, int]]:
        raise RecordImmutable(f"{self.model._meta.verbose_name_plural} are never deleted: record a correction.")

    def update(self, **kwargs: Any) -> int:
        model: Any = self.model
        refused = set(kwargs) - model.mutable_fields - model.set_once_fields
        if refused:
            raise RecordImmutable(f"{', '.join(sorted(refused))} of {model._meta.verbose_name_plural} never change.")
        queryset = self
        set_once = set(kwargs) & model.set_once_fields
        for name in set_once:
            queryset = queryset.filter(**{f"{name}__isnull": True})
        # The same rule as save(): a set-once value that needs a record of its own first is refused without it.
        rows: Any = queryset.only("pk") if set_once else ()
        for row in rows:
            for name in sorted(set_once):
                row.check_set_once(name)
        return super(AppendOnlyQuerySet, queryset).update(**kwargs)

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise RecordImmutable(f"{self.model._meta.verbose_name_plural} are not bulk-updated.")


class AppendOnlyModel(models.Model):
    """A record that is written once. `mutable_fields` are bookkeeping (when last used); `set_once_fields` go
    from empty to a value once (a revocation) and never back."""

    mutable_fields: ClassVar[frozenset[str]] = frozenset()
    set_once_fields: ClassVar[frozenset[str]] = frozenset()

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True
        # Django's own code paths (and anyone's) reach rows through `_base_manager`: guard it too.
        base_manager_name = "objects"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            self.refuse_changes()
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise RecordImmutable(f"A {self._meta.verbose_name} is never deleted: record a correction.")

    def refuse_changes(self) -> None:
        stored: dict[str, Any] | None = type(self)._base_manager.filter(pk=self.pk).values().first()  # type: ignore[assignment]
        if stored is None:
            raise RecordImmutable(f"This {self._meta.verbose_name} is not on the record.")
        changed = []
        for field in self._meta.concrete_fields:
            name, before, after = field.name, stored[field.attname], getattr(self, field.attname)
            if before == after or name in self.mutable_fields:
                continue
            if name in self.set_once_fields and before is None:
                self.check_set_once(name)
                continue
            changed.append(name)
        if changed:
            raise RecordImmutable(
                f"{', '.join(changed)} of a {self._meta.verbose_name} never change: record a correction instead."
            )

    def check_set_once(self, name: str) -> None:
        """Refuse a set-once value that needs a record of its own first (overridden where one does)."""


class Provider(models.TextChoices):
    GITHUB = "github", "GitHub"
    GITLAB = "gitlab", "GitLab"


class Person(models.Model):
    """Someone who writes, reviews or pairs. Identities (logins, e-mails) resolve to one Person."""

    display_name = models.CharField(max_length=200)
    is_bot = models.BooleanField(default=False)
    away_until = models.DateField(
        null=True,
        blank=True,
        help_text="Away (leave, on call elsewhere) up to and including this day: never suggested as a reviewer.",
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="person"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["display_name"]
        verbose_name_plural = "people"

    def __str__(self) -> str:
        return self.display_name


class Identity(models.Model):
    """A GitHub login, a GitLab username or a git e-mail address.

    Logins are scoped to their Connection (github.com and a GitHub Enterprise may both have a "sam");
    e-mails are global. An identity with no person is unresolved: a lead attaches it in the admin.
    """

    class Kind(models.TextChoices):
        GITHUB = "github", "GitHub login"
        GITLAB = "gitlab", "GitLab username"
        EMAIL = "email", "E-mail"

    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="identities")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    connection = models.ForeignKey(
        "Connection", null=True, blank=True, on_delete=models.CASCADE, related_name="identities"
    )
    value = models.CharField(max_length=255, help_text="Stored lower-case: logins and e-mails are case-insensitive.")
    external_id = models.CharField(max_length=64, blank=True, help_text="The provider's user id, when known.")
    display_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "identities"
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "connection", "value"],
                condition=Q(connection__isnull=False),
                name="identity_unique_login_per_connection",
            ),
            models.UniqueConstraint(
                fields=["kind", "value"], condition=Q(connection__isnull=True), name="identity_unique_global"
            ),
        ]
        indexes = [models.Index(fields=["value"], name="identity_value_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.value}"


class Team(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    review_within_hours = models.PositiveIntegerField(
        default=24, help_text="Working agreement: first review within this many hours of ready for review."
    )
    max_pr_size = models.PositiveIntegerField(
        default=400, help_text="Working agreement: changed lines (additions + deletions) per pull request."
    )
    slack_webhook_url = models.URLField(
        blank=True,
        validators=[outbound_url_validate],
        help_text="Slack-compatible incoming webhook for notices. Public addresses only (OUTBOUND_ALLOWED_NETWORKS).",
    )
    archived = models.BooleanField(
        default=False, help_text="Archived: its history stays on the record; it leaves the pages' lists."
    )
    members = models.ManyToManyField(Person, through="Membership", related_name="teams")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        LEAD = "lead", "Lead"
        MEMBER = "member", "Member"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "person"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.person} in {self.team} ({self.role})"


class Connection(models.Model):
    """One GitHub or GitLab instance: github.com, a GitHub Enterprise, gitlab.com or a self-managed GitLab."""

    provider = models.CharField(max_length=10, choices=Provider.choices)
    name = models.CharField(max_length=100, unique=True)
    base_url = models.URLField(
        help_text="API base URL: https://api.github.com, https://ghe.example.com/api/v3, https://gitlab.com"
    )
    web_url = models.URLField(blank=True, help_text="Where people browse it: https://github.com, ...")
    # Encrypted at rest (reviews.crypto); the admin shows only whether they are set.
    api_token = EncryptedTextField(blank=True)
    webhook_secret = EncryptedTextField(blank=True, help_text="Overrides GITHUB_WEBHOOK_SECRET / GITLAB_WEBHOOK_TOKEN.")
    # A GitHub App instead of a token: Tandem signs a JWT with the App's private key and acts through the
    # installation token of each repository's installation (reviews.services.credentials).
    app_id = models.CharField(
        max_length=20,
        blank=True,
        help_text="GitHub App id. Set: Tandem acts as the App (its installation tokens), not with the API token.",
    )
    app_private_key = EncryptedTextField(
        blank=True,
        help_text="The App's private key (PEM). The instance-wide connection may take it from "
        "GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_PATH instead.",
    )
    app_installation_id = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Only this installation of the App; empty: any installation."
    )
    app_account = models.CharField(
        max_length=100,
        blank=True,
        help_text="Only the App's installation on this organisation or user (login); empty: any account.",
    )
    report_as_check_run = models.BooleanField(
        default=False,
        help_text="GitHub App only: report the verdict as the check run tandem/review-policy, with the reasons in "
        "its summary, instead of a commit status. The App needs checks: write.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "base_url"], name="connection_unique_url")]

    def __str__(self) -> str:
        return self.name


class AppInstallation(models.Model):
    """One installation of a GitHub App connection's App, on an organisation or a user: what GitHub said of it,
    whether it is suspended or gone, and its current installation token (encrypted; minted again shortly before it
    expires, never per request)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="app_installations")
    installation_id = models.PositiveBigIntegerField()
    account_login = models.CharField(max_length=255, blank=True)
    account_type = models.CharField(max_length=20, blank=True, help_text="Organization or User.")
    repository_selection = models.CharField(max_length=20, blank=True, help_text="all or selected.")
    permissions = models.JSONField(default=dict, blank=True)
    events = models.JSONField(default=list, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspended_by = models.CharField(max_length=255, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="When the App was uninstalled.")
    token = EncryptedTextField(blank=True)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    tokens_minted = models.PositiveIntegerField(default=0)
    token_error = models.TextField(blank=True, help_text="Why the last try to get an installation token failed.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "installation_id"], name="app_installation_unique_id")
        ]

    def __str__(self) -> str:
        return f"{self.account_login or 'installation'} ({self.installation_id})"


class Repository(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="repositories")
    external_id = models.CharField(max_length=64, help_text="GitHub repository id / GitLab project id.")
    full_path = models.CharField(max_length=255, help_text="owner/name or group/subgroup/project")
    default_branch = models.CharField(max_length=255, default="main")
    web_url = models.URLField(blank=True)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="repositories")
    codeowners = models.TextField(
        blank=True,
        help_text="A CODEOWNERS pasted here overrides the repository's own file; empty: the file is read from the "
        "pull request's base branch.",
    )
    is_active = models.BooleanField(default=True)
    app_installation = models.ForeignKey(
        AppInstallation,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="repositories",
        help_text="The GitHub App installation that covers it: looked up once, then kept.",
    )
    access_error = models.TextField(
        blank=True,
        help_text="Why Tandem can neither read it nor post to it now (the App not installed on it, its installation "
        "suspended or removed); empty: it can. Sync and the verdict reconciler pass over it meanwhile.",
    )
    # Sync state: the newest pull request update seen by a *completed* sync run, and list-call ETags.
    synced_until = models.DateTimeField(null=True, blank=True)
    sync_etags = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "repositories"
        ordering = ["full_path"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "external_id"], name="repository_unique_external_id")
        ]
        indexes = [models.Index(fields=["full_path"], name="repository_path_idx")]

    def __str__(self) -> str:
        return self.full_path

    @property
    def provider(self) -> str:
        return self.connection.provider


class CodeownersFile(models.Model):
    """CODEOWNERS as read from one branch of a repository (a pull request's base): where it was found, its text
    and ETag (a conditional request for an unchanged file costs no quota), and why the last read failed."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="codeowners_files")
    branch = models.CharField(max_length=255)
    path = models.CharField(max_length=255, blank=True, help_text="Where it was found; empty: no CODEOWNERS.")
    text = models.TextField(blank=True)
    etag = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True, help_text="Why the last read failed; the verdicts that need it wait.")
    fetched_at = models.DateTimeField(null=True, blank=True, help_text="Empty: to be read again (a push touched it).")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "branch"], name="codeowners_file_unique_branch")]

    def __str__(self) -> str:
        return f"{self.repository}@{self.branch}:{self.path or '(none)'}"


class SyncRun(models.Model):
    """One sync of one repository: what it asked the API and how far it got."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        RATE_LIMITED = "rate_limited", "Waiting for rate limit"

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="sync_runs")
    full = models.BooleanField(default=False)
    since = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    api_calls = models.PositiveIntegerField(default=0)
    pull_requests_synced = models.PositiveIntegerField(default=0)
    newest_update_seen = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["repository", "-started_at"], name="syncrun_repo_started_idx")]

    def __str__(self) -> str:
        return f"sync {self.repository} {self.started_at:%Y-%m-%d %H:%M} {self.status}"


class PullRequest(models.Model):
    class State(models.TextChoices):
        OPEN = "open", "Open"
        MERGED = "merged", "Merged"
        CLOSED = "closed", "Closed"

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="pull_requests")
    number = models.PositiveIntegerField(help_text="GitHub number / GitLab iid.")
    external_id = models.CharField(max_length=64, blank=True)
    title = models.CharField(max_length=1000)
    body = models.TextField(blank=True)
    author = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="authored_pull_requests"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    draft = models.BooleanField(default=False)
    base_ref = models.CharField(max_length=255, blank=True)
    head_ref = models.CharField(max_length=255, blank=True)
    head_sha = models.CharField(max_length=64, blank=True)
    merge_commit_sha = models.CharField(max_length=64, blank=True)
    # Null until a payload or the API says: GitLab hooks and GitHub list calls do not carry them.
    additions = models.PositiveIntegerField(null=True, blank=True)
    deletions = models.PositiveIntegerField(null=True, blank=True)
    changed_files = models.PositiveIntegerField(null=True, blank=True)
    labels = models.JSONField(default=list, blank=True)
    web_url = models.URLField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(help_text="The provider's updated time: state never goes backwards.")
    ready_at = models.DateTimeField(null=True, blank=True, help_text="Opened as ready, or left draft.")
    last_pushed_at = models.DateTimeField(null=True, blank=True)
    first_commit_at = models.DateTimeField(null=True, blank=True)
    diff_ids = models.JSONField(
        default=dict, blank=True, help_text="Head sha → fingerprint of the whole diff there (rebase detection)."
    )
    diff_ids_owed = models.JSONField(
        default=dict,
        blank=True,
        help_text="Head sha → {base, files} of heads whose files came without patches (GraphQL): their fingerprint "
        "is fetched (one compare call) when a verdict needs it.",
    )
    fingerprint_error = models.CharField(
        max_length=500,
        blank=True,
        help_text="Why the last fetch of a fingerprint a verdict needs failed; retried on the facts' backoff.",
    )
    details_head_sha = models.CharField(
        max_length=64, blank=True, help_text="The head sha whose files and diff id sync last fetched."
    )
    details_synced_at = models.DateTimeField(
        null=True, blank=True, help_text="The updated_at at which sync last fetched reviews, commits and files."
    )
    files_incomplete = models.CharField(
        max_length=255,
        blank=True,
        help_text="Why the changed files fetched for details_head_sha are not the whole change; empty when they are.",
    )
    commits_incomplete = models.CharField(
        max_length=255,
        blank=True,
        help_text="Why the commits fetched for details_head_sha are not all of them; empty when they are.",
    )
    facts_error = models.CharField(
        max_length=500, blank=True, help_text="Why the last fetch of the head's files, commits and reviews failed."
    )
    facts_attempts = models.PositiveIntegerField(default=0, help_text="Failed fetches since the head's facts came.")
    facts_retry_at = models.DateTimeField(
        null=True, blank=True, help_text="When to fetch the head's missing facts again (backoff)."
    )
    evaluation_owed_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Since when a change waits for an evaluation (set with the change, cleared by the evaluation).",
    )
    figures_inputs_changed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When a fact its stored review figures read last changed (set with the change; never cleared).",
    )
    figures_covered_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Its stored review figures saw every change stamped up to this moment (their computation's start "
        "less the settling time); a later stamp, or none computed: owed.",
    )
    merged_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    merged_by = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_pull_requests"
    )
    requested_reviewers = models.ManyToManyField(Person, blank=True, related_name="review_requests")
    commits: models.ManyToManyField[Commit, Any] = models.ManyToManyField(
        "Commit", blank=True, related_name="pull_requests"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "number"], name="pull_request_unique_number")]
        indexes = [
            models.Index(fields=["repository", "merged_at"], name="pr_repo_merged_idx"),
            # Merged pull requests whose stored figures are owed (none computed, or a change since): the pages' probe.
            models.Index(
                fields=["repository", "merged_at"],
                name="pr_figures_owed_idx",
                condition=Q(state="merged")
                & (Q(figures_covered_until__isnull=True) | Q(figures_inputs_changed_at__gt=F("figures_covered_until"))),
            ),
            models.Index(
                fields=["evaluation_owed_since"],
                name="pr_evaluation_owed_idx",
                condition=models.Q(evaluation_owed_since__isnull=False),
            ),
            models.Index(fields=["author"], name="pr_author_idx"),
            models.Index(fields=["state"], name="pr_state_idx"),
            models.Index(fields=["created_at"], name="pr_created_idx"),
            models.Index(fields=["merged_at"], name="pr_merged_idx"),
            models.Index(fields=["repository", "merge_commit_sha"], name="pr_repo_merge_sha_idx"),
            models.Index(fields=["repository", "head_sha"], name="pr_repo_head_sha_idx"),
            models.Index(fields=["state", "facts_retry_at"], name="pr_facts_retry_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.repository.full_path}#{self.number}"

    @property
    def changed_lines(self) -> int | None:
        if self.additions is None or self.deletions is None:
            return None
        return self.additions + self.deletions


# The review-flow durations a `PullRequestFigures` row holds (seconds), as `reviews.selectors.health` names them.
FIGURES_DURATIONS = (
    "time_to_first_review",
    "pickup_time",
    "review_time",
    "time_to_approve",
    "merge_time",
    "cycle_time",
)
# The columns whose per-bucket counts the rollups hold (`reviews.selectors.order_statistics`), each with an index that
# reads one bucket's rows in value order (its ends; name: `figures_<short>_order_idx`) and, on PostgreSQL, one that
# reads a bucket's rows of one period (`figures_<short>_bucket_idx`, migration 0033: not declared here, as SQLite has
# no `width_bucket`).
FIGURES_HISTOGRAMS = (*FIGURES_DURATIONS, "changed_lines")
_ORDER_INDEX_NAMES = ("ttfr", "pickup", "review", "approve", "merge", "cycle", "lines")


class PullRequestFiguresQuerySet(models.QuerySet["PullRequestFigures"]):
    def delete(self) -> tuple[int, dict[str, int]]:
        """A pull request whose stored figures are deleted owes them again (the pages find owed rows by
        `PullRequest.figures_covered_until`, not by looking for missing ones)."""
        from reviews.services.figures import rollups_forget

        with transaction.atomic(savepoint=False):
            rollups_forget(self)
            PullRequest.objects.filter(pk__in=list(self.values_list("pk", flat=True))).update(
                figures_covered_until=None
            )
            return super().delete()


class PullRequestFigures(models.Model):
    """A merged pull request's review-flow figures (`reviews.selectors.health.PullRequestFlow`), stored so that the
    team page and the health API aggregate them in SQL instead of computing every flow on each read. Derived, never a
    fact: `reviews.services.figures` writes it with the same code the pages used to run. A change to an input stamps
    the pull request (`PullRequest.figures_inputs_changed_at`, in the change's transaction); a row computed before
    that stamp settled, missing, or of another `input_version` (settings, bots, the code's definitions) is computed
    again before it is read. Durations are in seconds."""

    pull_request = models.OneToOneField(PullRequest, primary_key=True, on_delete=models.CASCADE, related_name="figures")
    # The pull request's, copied: a period's rows of some repositories are read without joining 100,000 pull requests.
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="+", db_index=False)
    merged_at = models.DateTimeField(help_text="The merge this row was computed for (a different one: not current).")
    changed_lines = models.PositiveIntegerField(null=True)
    time_to_first_review = models.FloatField(null=True)
    pickup_time = models.FloatField(null=True)
    review_time = models.FloatField(null=True)
    time_to_approve = models.FloatField(null=True)
    merge_time = models.FloatField(null=True)
    cycle_time = models.FloatField(null=True)
    rework_cycles = models.PositiveIntegerField()
    approvals = models.PositiveIntegerField()
    rubber_stamps = models.PositiveIntegerField()
    rubber_stamped_by = models.JSONField(default=list, help_text="The reviewer of each rubber stamp.")
    paired = models.BooleanField()
    coverage = models.CharField(max_length=12, help_text="reviewed, paired_only or neither.")
    comments = models.PositiveIntegerField()
    reviews_by = models.JSONField(default=list, help_text="[reviewer, reviews given] of each reviewer (reviewer load).")
    compliance = models.CharField(
        max_length=16, blank=True, help_text="compliant, overridden, violation or not_evaluated (at merge)."
    )
    outcome_at_merge = models.CharField(
        max_length=20, blank=True, help_text="The recorded violation's outcome, or else the verdict in force at merge."
    )
    override = models.ForeignKey(
        "Override",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The standing override (its follow-up is read live: done, due or overdue depends on now).",
    )
    input_version = models.CharField(max_length=32)
    computed_at = models.DateTimeField(help_text="When the computation began: it saw every change committed before.")

    objects = PullRequestFiguresQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["merged_at"], name="figures_merged_idx"),
            # The pages probe for a row of another input version (`current_figures`): two range scans, not a pass.
            models.Index(fields=["input_version"], name="figures_version_idx"),
            # The percentiles' pass over a period's rows of some repositories (`health._duration_figures`): an
            # index-only scan on PostgreSQL (SQLite ignores the included columns: the pass reads the rows there).
            models.Index(
                fields=["repository", "merged_at"],
                include=[*FIGURES_DURATIONS, "changed_lines"],
                name="figures_repository_merged_idx",
            ),
            # The compliance summary reads the overridden rows (their follow-up is live, so not in the rollups).
            models.Index(fields=["merged_at"], name="figures_overridden_idx", condition=Q(compliance="overridden")),
            # A period's rows of one histogram bucket in value order (`order_statistics`: a bucket's ends without a
            # sort), and of one value by merge (whether a period has a row on a bucket's bound: one probe).
            *(
                models.Index(
                    fields=["repository", column, "merged_at"],
                    condition=Q(**{f"{column}__gte": 0}),
                    name=f"figures_{short}_order_idx",
                )
                for column, short in zip(FIGURES_HISTOGRAMS, _ORDER_INDEX_NAMES, strict=True)
            ),
        ]

    def __str__(self) -> str:
        return f"figures of pull request {self.pull_request_id}"

    def delete(self, using: Any = None, keep_parents: bool = False) -> tuple[int, dict[str, int]]:
        from reviews.services.figures import rollups_forget

        with transaction.atomic(savepoint=False):
            rollups_forget(PullRequestFigures.objects.filter(pk=self.pk))
            PullRequest.objects.filter(pk=self.pull_request_id).update(figures_covered_until=None)
            return super().delete(using=using, keep_parents=keep_parents)


class FiguresRollup(models.Model):
    """The additive parts of a repository's stored figures (`PullRequestFigures`) merged in one UTC hour, summed: so
    that a page over a period of whole hours adds a few hundred of these instead of reading 100,000 rows. Derived,
    never a fact: `reviews.services.figures` adjusts it in the transaction that writes or deletes the rows it sums
    (`rollup_counts` of each row, one definition), and `manage.py rebuild_figures_rollups` computes it all again.

    `counts`: name → sum (merged, coverage, sizes, approvals, ..., `given:<person>`, `stamps:<person>`,
    `compliance:<status>:<outcome>` of every status but overridden, whose follow-up is read live); no zero entries."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField(help_text="The UTC hour of merge the rows summed here fall in (its start).")
    counts = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "hour"], name="figures_rollup_unique_hour")]

    def __str__(self) -> str:
        return f"figures of {self.repository_id} merged in the hour from {self.hour:%Y-%m-%d %H:%M}"


class FiguresDailyRollup(models.Model):
    """`FiguresRollup`'s sums over a whole UTC day (the sum of its 24 hours' counts, kept in the same transaction by
    the same additive upsert): a page's period of local midnights is whole UTC days but for its edges, so it adds
    about one row per day instead of 24 (the edges' hours from `FiguresRollup`)."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="+")
    day = models.DateField(help_text="The UTC day of merge the rows summed here fall in.")
    counts = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "day"], name="figures_rollup_unique_day")]

    def __str__(self) -> str:
        return f"figures of {self.repository_id} merged on {self.day:%Y-%m-%d} (UTC)"


class ChangedFile(models.Model):
    pull_request = models.ForeignKey(PullRequest, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1000)
    previous_path = models.CharField(max_length=1000, blank=True)
    status = models.CharField(max_length=20, default="modified")
    additions = models.PositiveIntegerField(default=0)
    deletions = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pull_request", "path"], name="changed_file_unique_path")]
        # Area familiarity and bus factor filter by directory prefix (`path LIKE 'payments/ledger/%'`).
        indexes = [models.Index(fields=["path"], name="changed_file_path_idx", opclasses=["varchar_pattern_ops"])]

    def __str__(self) -> str:
        return self.path


class Commit(models.Model):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="commits")
    sha = models.CharField(max_length=64)
    message = models.TextField(blank=True)
    author = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="commits")
    author_identity = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="authored_commits"
    )
    committer_identity = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="committed_commits"
    )
    authored_at = models.DateTimeField()
    committed_at = models.DateTimeField(null=True, blank=True)
    parents = models.JSONField(default=list, blank=True)
    # Whether `parents` is what the VCS says: a commit only a push webhook has seen has no parents on record yet,
    # which is not the same as a root commit (linking fetches what the graph lacks).
    parents_known = models.BooleanField(default=False)
    co_authors = models.ManyToManyField(Identity, blank=True, related_name="co_authored_commits")
    # Who pushed it, as the push webhook's sender says; unknown for commits only sync has seen.
    pushed_by = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="pushed_commits"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "sha"], name="commit_unique_sha")]
        indexes = [
            models.Index(fields=["repository", "authored_at"], name="commit_repo_authored_idx"),
            # Linking's graph query (and the deploy check's dry run) reads commits authored OR committed recently.
            models.Index(fields=["repository", "committed_at"], name="commit_repo_committed_idx"),
        ]

    def __str__(self) -> str:
        return self.sha[:12]


class Review(models.Model):
    class State(models.TextChoices):
        APPROVED = "approved", "Approved"
        CHANGES_REQUESTED = "changes_requested", "Changes requested"
        COMMENTED = "commented", "Commented"
        DISMISSED = "dismissed", "Dismissed"

    pull_request = models.ForeignKey(PullRequest, on_delete=models.CASCADE, related_name="reviews")
    external_id = models.CharField(max_length=64)
    reviewer = models.ForeignKey(Person, null=True, blank=True, on_delete=models.PROTECT, related_name="reviews")
    state = models.CharField(max_length=20, choices=State.choices)
    commit_sha = models.CharField(max_length=64, blank=True)
    body = models.TextField(blank=True)
    comment_count = models.PositiveIntegerField(default=0)
    submitted_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pull_request", "external_id"], name="review_unique")]
        indexes = [
            models.Index(fields=["reviewer", "submitted_at"], name="review_reviewer_idx"),
            models.Index(fields=["pull_request", "submitted_at"], name="review_pr_submitted_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} {self.state} {self.pull_request}"


class ReviewerSuggestion(models.Model):
    """Whom Tandem suggests to review a pull request at one head, each with the reasons in words; worked out in a
    task when the pull request is evaluated (never in a request), and, when the policy asks, whom it requested."""

    pull_request = models.ForeignKey(PullRequest, on_delete=models.CASCADE, related_name="reviewer_suggestions")
    head_sha = models.CharField(max_length=64)
    computed_at = models.DateTimeField(default=timezone.now)
    areas = models.JSONField(default=list, blank=True, help_text="The directory prefixes the change touches.")
    suggestions = models.JSONField(
        default=list, blank=True, help_text="In order: person id, name, kind, score and reasons in words."
    )
    requested = models.JSONField(default=list, blank=True, help_text="Person ids Tandem requested on the VCS.")
    requested_at = models.DateTimeField(null=True, blank=True)
    request_error = models.TextField(blank=True, help_text="Why the last request on the VCS failed.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pull_request", "head_sha"], name="reviewer_suggestion_unique_head")
        ]

    def __str__(self) -> str:
        return f"reviewers for {self.pull_request_id} @ {self.head_sha[:12]}"


class Comment(models.Model):
    """A comment on a pull request: conversation, line (diff) comment, or a review's body.

    Non-system comments by someone other than the author are review activity (METRICS.md).
    """

    class Kind(models.TextChoices):
        CONVERSATION = "conversation", "Conversation"
        DIFF = "diff", "Line comment"
        REVIEW_BODY = "review_body", "Review body"

    pull_request = models.ForeignKey(PullRequest, on_delete=models.CASCADE, related_name="comments")
    external_id = models.CharField(max_length=64)
    author = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="comments")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CONVERSATION)
    body = models.TextField(blank=True)
    path = models.CharField(max_length=1000, blank=True)
    is_system = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pull_request", "external_id"], name="comment_unique")]
        indexes = [models.Index(fields=["pull_request", "created_at"], name="comment_pr_created_idx")]

    def __str__(self) -> str:
        return f"comment {self.external_id} on {self.pull_request}"


class CommitStatus(models.Model):
    """A check or status on a commit (GitHub status / check run / check suite, GitLab pipeline / job)."""

    class State(models.TextChoices):
        SUCCESS = "success", "Success"
        PENDING = "pending", "Pending"
        FAILURE = "failure", "Failure"
        ERROR = "error", "Error"

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="statuses")
    sha = models.CharField(max_length=64)
    context = models.CharField(max_length=255)
    state = models.CharField(max_length=10, choices=State.choices)
    description = models.CharField(max_length=1000, blank=True)
    target_url = models.URLField(max_length=1000, blank=True)
    source = models.CharField(max_length=20, default="status")
    external_id = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "commit statuses"
        constraints = [
            models.UniqueConstraint(fields=["repository", "sha", "context"], name="commit_status_unique_context")
        ]

    def __str__(self) -> str:
        return f"{self.context}={self.state} @ {self.sha[:12]}"


class WebhookDelivery(models.Model):
    """A webhook exactly as received. Stored before the webhook is acknowledged, so nothing acknowledged is
    lost; processing happens later in a task and can be replayed."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed: the payload cannot be processed"
        DEAD = "dead", "Dead-lettered: retries exhausted"

    provider = models.CharField(max_length=20)
    delivery_id = models.CharField(max_length=200)
    event = models.CharField(max_length=100)
    action = models.CharField(max_length=100, blank=True)
    connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    headers = models.JSONField(default=dict)
    body = models.TextField()
    received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When a worker last took it up.")
    claim_token = models.CharField(
        max_length=255, blank=True, help_text="The task that holds the claim: its own redelivery may take it back."
    )
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When a pending delivery is due (again): the dispatcher's queue."
    )
    dispatches = models.PositiveIntegerField(default=0, help_text="Hand-overs to a worker since the last claim.")
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [models.UniqueConstraint(fields=["provider", "delivery_id"], name="delivery_unique_id")]
        indexes = [
            models.Index(fields=["status", "received_at"], name="delivery_status_idx"),
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event} {self.delivery_id}"


class Policy(models.Model):
    """A review policy (YAML) attached to a team (the default for its repositories) or to one repository
    (which replaces the team's)."""

    team = models.OneToOneField(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="policy")
    repository = models.OneToOneField(
        Repository, null=True, blank=True, on_delete=models.CASCADE, related_name="policy"
    )
    document = models.TextField(help_text="YAML. Validated on save; an invalid document is never stored.")
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        verbose_name_plural = "policies"
        constraints = [
            models.CheckConstraint(
                condition=(Q(team__isnull=False) & Q(repository__isnull=True))
                | (Q(team__isnull=True) & Q(repository__isnull=False)),
                name="policy_attached_to_team_or_repository",
            )
        ]

    def __str__(self) -> str:
        return f"policy for {self.team or self.repository}"


class PolicyVersion(AppendOnlyModel):
    """One version of a policy document as it took effect: who wrote it (a person, or a token and the lead who
    created it), when and why. A restore is a new version that points at the one it restores."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    document = models.TextField()
    reason = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    token = models.ForeignKey("ApiToken", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    restored_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(AppendOnlyModel.Meta):
        constraints = [models.UniqueConstraint(fields=["policy", "number"], name="policy_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.policy} v{self.number}"


class PolicyEvaluation(AppendOnlyModel):
    """A verdict, written once: what the compliance figures and the evidence export read as the verdict at merge.
    Only its reporting bookkeeping (when it was reported or confirmed, the last report error) changes."""

    mutable_fields: ClassVar[frozenset[str]] = frozenset({"reported_at", "report_error", "last_evaluated_at"})
    set_once_fields: ClassVar[frozenset[str]] = frozenset({"check_run_id"})

    class Outcome(models.TextChoices):
        APPROVED = "approved", "Approved"
        PENDING = "pending", "Pending"
        BLOCKED = "blocked", "Blocked"
        ERROR = "error", "Error"
        OVERRIDDEN = "overridden", "Overridden"

    pull_request = models.ForeignKey(PullRequest, on_delete=models.PROTECT, related_name="evaluations")
    policy = models.ForeignKey(Policy, null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluations")
    head_sha = models.CharField(max_length=64)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    description = models.CharField(max_length=140, blank=True, help_text="The commit status's short text.")
    trace = models.JSONField(default=dict)
    evaluated_at = models.DateTimeField(default=timezone.now, help_text="When this verdict was first reached.")
    last_evaluated_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was last confirmed: an unchanged verdict is not stored twice."
    )
    reported_at = models.DateTimeField(null=True, blank=True)
    report_error = models.TextField(blank=True)
    check_run_id = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The GitHub check run that shows it, when reported as a check run."
    )

    class Meta(AppendOnlyModel.Meta):
        indexes = [models.Index(fields=["pull_request", "-evaluated_at"], name="evaluation_pr_idx")]

    def __str__(self) -> str:
        return f"{self.pull_request} @ {self.head_sha[:12]}: {self.outcome}"


class Override(AppendOnlyModel):
    """Break glass: a pull request allowed through without its policy being met, on the record.

    Written once. Its follow-up is a FollowUpReview, a withdrawal an OverrideWithdrawal; `followup_done_at` and
    `followup_by` mirror the follow-up review (set once, only when that review exists) for filtering.
    """

    set_once_fields: ClassVar[frozenset[str]] = frozenset({"followup_done_at", "followup_by"})

    pull_request = models.ForeignKey(PullRequest, on_delete=models.PROTECT, related_name="overrides")
    head_sha = models.CharField(max_length=64, blank=True)
    overridden_by = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="overrides_given")
    reason = models.TextField()
    incident_reference = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    followup_due_at = models.DateTimeField()
    followup_done_at = models.DateTimeField(null=True, blank=True)
    followup_by = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.PROTECT, related_name="followups_done"
    )

    class Meta(AppendOnlyModel.Meta):
        indexes = [models.Index(fields=["followup_done_at", "followup_due_at"], name="override_followup_idx")]

    def __str__(self) -> str:
        return f"override of {self.pull_request} by {self.overridden_by}"

    def check_set_once(self, name: str) -> None:
        if not FollowUpReview.objects.filter(override_id=self.pk).exists():
            raise RecordImmutable("A follow-up is completed by recording a follow-up review, not by a date.")


class OverrideWithdrawal(AppendOnlyModel):
    """A correction of an override: it no longer stands, and the pull request's verdict is evaluated again."""

    override = models.OneToOneField(Override, on_delete=models.PROTECT, related_name="withdrawal")
    withdrawn_by = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"override withdrawn by {self.withdrawn_by}: {self.reason}"


class FollowUpReview(AppendOnlyModel):
    """The review an override owes: by someone who neither wrote the change nor overrode it, with a note, and
    optionally the VCS review it points at."""

    override = models.OneToOneField(Override, on_delete=models.PROTECT, related_name="followup")
    reviewer = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="followup_reviews")
    note = models.TextField()
    review = models.ForeignKey("Review", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    completed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"follow-up of {self.override_id} by {self.reviewer}"


class PolicyViolation(AppendOnlyModel):
    """A pull request merged while its policy was not satisfied and not overridden."""

    pull_request = models.OneToOneField(PullRequest, on_delete=models.PROTECT, related_name="violation")
    evaluation = models.ForeignKey(PolicyEvaluation, null=True, blank=True, on_delete=models.PROTECT)
    outcome = models.CharField(max_length=20)
    recorded_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"violation: {self.pull_request}"


class RiskSignal(models.Model):
    """What review policies need to know about production: a repository path with a recent confirmed
    incident. Written by telemetry through a reviews service; read by the policy engine."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="risk_signals")
    path_prefixes = models.JSONField(default=list, blank=True, help_text="Empty: the whole repository.")
    service_name = models.CharField(max_length=200, blank=True)
    reference = models.CharField(max_length=255, help_text="The incident it comes from, e.g. 'pagerduty:PX1'.")
    occurred_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "reference"], name="risk_signal_unique")]
        indexes = [models.Index(fields=["repository", "occurred_at"], name="risk_repo_occurred_idx")]

    def __str__(self) -> str:
        return f"risk {self.reference} on {self.repository}"


class PairingSession(models.Model):
    class Source(models.TextChoices):
        API = "api", "API"
        CO_AUTHOR = "co_author", "Co-author trailer"
        MANUAL = "manual", "Manual"

    source = models.CharField(max_length=20, choices=Source.choices, default=Source.API)
    external_id = models.CharField(
        max_length=200,
        blank=True,
        help_text="Client-supplied id (API), or <repository>/<first commit sha>/<person ids> (co-author trailers).",
    )
    repository = models.ForeignKey(
        Repository, null=True, blank=True, on_delete=models.SET_NULL, related_name="pairing_sessions"
    )
    branch = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    participants = models.ManyToManyField(Person, through="PairingParticipant", related_name="pairing_sessions")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"], condition=~Q(external_id=""), name="pairing_unique_external_id"
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=models.F("started_at")),
                name="pairing_ends_after_start",
            ),
        ]
        indexes = [
            models.Index(fields=["started_at"], name="pairing_started_idx"),
            models.Index(fields=["repository", "started_at"], name="pairing_repo_started_idx"),
            models.Index(fields=["branch", "started_at"], name="pairing_branch_started_idx"),
            models.Index(fields=["ended_at"], name="pairing_ended_idx"),
        ]

    def __str__(self) -> str:
        return f"pairing {self.started_at:%Y-%m-%d %H:%M}"


class PairingParticipant(models.Model):
    """One stay of a person in a session, from joining to leaving. Someone who leaves and comes back has a row per
    stay: they were not there in between, and presence (pairing credit, pairing hours) counts each stay alone."""

    class Role(models.TextChoices):
        DRIVER = "driver", "Driver"
        NAVIGATOR = "navigator", "Navigator"

    session = models.ForeignKey(PairingSession, on_delete=models.CASCADE, related_name="participations")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="participations")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.NAVIGATOR)
    joined_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "person", "joined_at"], name="participant_unique_stay"),
            # The database's word that nobody is in two sessions at once (the services lock people too).
            models.UniqueConstraint(
                fields=["person"], condition=Q(left_at__isnull=True), name="participant_one_open_session"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.person} ({self.role})"


class ApiToken(AppendOnlyModel):
    """A token for machines (CI/CD, scripts), created by a lead in the admin and scoped to teams.

    Only a SHA-256 of the secret is stored; the secret is shown once, when the token is created. A token is never
    deleted or renamed: it is revoked, once.
    """

    mutable_fields: ClassVar[frozenset[str]] = frozenset({"last_used_at"})
    set_once_fields: ClassVar[frozenset[str]] = frozenset({"revoked_at"})

    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=12, unique=True, help_text="The first characters, to recognise it by.")
    key_hash = models.CharField(max_length=64, unique=True)
    teams = models.ManyToManyField(Team, related_name="api_tokens", help_text="What the token may read and write.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(AppendOnlyModel.Meta):
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class AuditEvent(AppendOnlyModel):
    """Who changed what, when, from where, with the before and after of each field changed. Never changed."""

    class Source(models.TextChoices):
        ADMIN = "admin", "Admin"
        WEB = "web", "Web page"
        API = "api", "API"
        WEBHOOK = "webhook", "Webhook"
        SYNC = "sync", "Sync"
        SYSTEM = "system", "System"

    at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=10, choices=Source.choices)
    action = models.CharField(max_length=50, help_text="e.g. policy.edit, override.create, token.revoke")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events")
    actor = models.CharField(max_length=300, help_text="Who, in words, as they were called then.")
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor_token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=64, blank=True)
    target = models.CharField(max_length=300, blank=True, help_text="The object, in words, as it was then.")
    changes = models.JSONField(default=dict, blank=True, help_text="field → {before, after}")
    reason = models.TextField(blank=True)

    class Meta(AppendOnlyModel.Meta):
        ordering = ["-at", "-pk"]
        indexes = [
            models.Index(fields=["team", "-at"], name="audit_team_at_idx"),
            models.Index(fields=["action", "-at"], name="audit_action_at_idx"),
            models.Index(fields=["-at"], name="audit_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"
