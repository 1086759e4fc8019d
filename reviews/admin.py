"""The admin, made for team leads: filters on what they triage by, search, autocomplete on every foreign key.

Facts from GitHub, GitLab and CI/CD and records of exceptions are read-only here for everyone (`FactAdmin`,
`RecordAdmin`): actions that call services are the only way the admin writes them. A lead brings a new person
into their team on the person's page: their login, their accounts and addresses, their role."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import password_validation
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Model, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html_join

# Imported for what they register: the audit trail's admin, and beat's periodic jobs (superusers only).
from reviews import admin_audit, admin_schedules  # noqa: F401
from reviews.access import pairing_people_beyond
from reviews.admin_scoping import (
    LEADS,
    NOBODY,
    SUPERUSERS,
    FactAdmin,
    RecordAdmin,
    ScopedInline,
    SuperuserOnlyAdmin,
    TeamScopedAdmin,
    admin_access,
)
from reviews.admin_secrets import ConnectionForm, TeamForm, secret_state
from reviews.integrations.limits import YEAR_MAX, YEAR_MIN
from reviews.models import (
    ApiToken,
    AuditEvent,
    ChangedFile,
    Comment,
    Commit,
    CommitStatus,
    Connection,
    FollowUpReview,
    Identity,
    Membership,
    Override,
    OverrideWithdrawal,
    PairingParticipant,
    PairingSession,
    Person,
    Policy,
    PolicyEvaluation,
    PolicyVersion,
    PolicyViolation,
    PullRequest,
    Repository,
    Review,
    RiskSignal,
    SyncRun,
    Team,
    WebhookDelivery,
)
from reviews.services.audit import Actor, actor_for, audit_event_record, field_changes, fields_of


def admin_actor(request: HttpRequest) -> Actor:
    """Who writes through this admin request: every write here is audited as theirs, from the admin."""
    return actor_for(request.user, source=AuditEvent.Source.ADMIN)


def ask_then_act(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    form_class: type[forms.Form],
    action: str,
    title: str,
    intro: str,
    submit: str,
    act: Callable[[Any, Person, dict[str, Any]], object],
    done: str,
) -> TemplateResponse | None:
    """An action that asks for a form first (a reason, a note), then calls a service per row as the signed-in
    person; a row the service refuses is named with why, the rest go through."""
    person = getattr(request.user, "person", None)
    if person is None:
        model_admin.message_user(request, "Your login is not linked to a person.", messages.ERROR)
        return None
    form = form_class(request.POST if "confirm" in request.POST else None)
    if form.is_bound and form.is_valid():
        count = 0
        for row in queryset:
            try:
                act(row, person, form.cleaned_data)
                count += 1
            except (PermissionDenied, ValidationError) as error:
                model_admin.message_user(request, f"{row}: {error}", messages.ERROR)
        if count:
            model_admin.message_user(request, done.format(count), messages.SUCCESS)
        return None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "intro": intro,
        "items": queryset,
        "form": form,
        "action": action,
        "submit": submit,
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/reviews/action_form.html", context)


class FollowUpForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), help_text="What you reviewed, and what you found.")


class WithdrawForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), help_text="Why the override no longer stands (kept on the record)."
    )


class OverrideForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="Why this cannot wait for review.")
    incident_reference = forms.CharField(required=False, help_text="The incident this fixes, if any.")


class IdentityInlineForm(forms.ModelForm[Identity]):
    """An account or address of the person on this page. One Tandem already knows and nobody has (unresolved) is
    claimed for them; one linked to someone else is refused, never moved."""

    claimed: Identity | None = None

    class Meta:
        model = Identity
        fields = ["kind", "connection", "value", "external_id", "display_name"]

    def clean_value(self) -> str:
        return str(self.cleaned_data["value"]).strip().lower()  # logins and e-mails are case-insensitive

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        known = self._known(cleaned)
        if known is None:
            return cleaned
        if known.person_id is None and self.instance.pk is None:
            self.claimed = known
        elif known.person_id is None:
            self.add_error("value", f"{known} is known already and nobody's: remove this row and add it again.")
        else:
            self.add_error("value", f"{known} is already linked to someone else; a superuser can move it.")
        return cleaned

    def _known(self, cleaned: dict[str, Any]) -> Identity | None:
        kind, value, connection = cleaned.get("kind"), cleaned.get("value"), cleaned.get("connection")
        if not kind or not value:
            return None
        same = Identity.objects.filter(kind=kind, value=value)
        same = same.filter(connection=connection) if connection is not None else same.filter(connection__isnull=True)
        return same.exclude(pk=self.instance.pk).first() if self.instance.pk else same.first()

    def _post_clean(self) -> None:
        if self.claimed is None:
            super()._post_clean()  # type: ignore[misc]
        # A claimed identity is not inserted again, so the uniqueness it would break is not checked.

    def save(self, commit: bool = True) -> Identity:
        if self.claimed is None:
            return super().save(commit)
        from reviews.services.onboarding import identity_claim

        person = self.instance.person
        if person is None:  # the inline's formset sets the person of the page on every row
            raise ValueError("an identity row with no person to claim it for")
        self.instance = identity_claim(identity=self.claimed, person=person)
        return self.instance


class IdentityInline(ScopedInline):
    model = Identity
    form = IdentityInlineForm
    extra = 0
    can_delete = False  # an identity wrongly attached is detached on its own page: its commits keep it
    # Connections are few and shared: a plain choice, since their own admin (and so its autocomplete) is superusers'.
    fields = ["kind", "connection", "value", "external_id", "display_name"]


class MembershipFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    """Memberships saved through `membership_set` / `membership_remove`: audited, and the people's open pull
    requests evaluated again (rules name teams)."""

    actor: Actor

    def save(self, commit: bool = True) -> list[Membership]:
        from reviews.services.teams import membership_remove, membership_set

        self.new_objects, self.changed_objects, self.deleted_objects = [], [], []
        parent = self.fk.name
        for form in self.initial_forms:
            old = form.instance
            if self._should_delete_form(form):  # type: ignore[attr-defined]
                membership_remove(team=old.team, person=old.person, actor=self.actor)
                self.deleted_objects.append(old)
            elif form.has_changed():
                wanted = {**form.cleaned_data, parent: self.instance}
                if (wanted["team"].pk, wanted["person"].pk) != (old.team_id, old.person_id):
                    membership_remove(team=old.team, person=old.person, actor=self.actor)
                saved = membership_set(
                    team=wanted["team"], person=wanted["person"], role=wanted["role"], actor=self.actor
                )
                self.changed_objects.append((saved, form.changed_data))
        for form in self.extra_forms:
            if form.has_changed() and not self._should_delete_form(form):  # type: ignore[attr-defined]
                wanted = {**form.cleaned_data, parent: self.instance}
                saved = membership_set(
                    team=wanted["team"], person=wanted["person"], role=wanted["role"], actor=self.actor
                )
                self.new_objects.append(saved)
        return [*self.new_objects, *(saved for saved, _ in self.changed_objects)]


class MembershipInline(ScopedInline):
    model = Membership
    formset = MembershipFormSet
    extra = 0
    autocomplete_fields = ["person", "team"]

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        return type(formset.__name__, (formset,), {"actor": admin_actor(request)})


class PersonMembershipInline(MembershipInline):
    """On a new person's page a lead names the team (one of theirs) and the role: a person belongs to a team."""

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        if obj is None and not request.user.is_superuser:
            kwargs.update(min_num=1, validate_min=True)
        return super().get_formset(request, obj, **kwargs)


class PersonForm(forms.ModelForm[Any]):
    login_username = forms.CharField(
        required=False, max_length=150, label="New login", help_text="A username to sign in to Tandem with."
    )
    login_email = forms.EmailField(required=False, label="Login e-mail", help_text="For password resets.")
    login_password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        label="Initial password",
        help_text="Optional: without one, they set it through 'forgot password'.",
    )

    class Meta:
        model = Person
        fields = ["display_name", "is_bot", "away_until"]

    def clean_away_until(self) -> Any:
        """The same range as the API's `PUT /people/<id>/away` (a year-1 date would read as "back long ago")."""
        away_until = self.cleaned_data.get("away_until")
        if away_until is not None and not YEAR_MIN <= away_until.year <= YEAR_MAX:
            raise forms.ValidationError(f"Must be between the years {YEAR_MIN} and {YEAR_MAX}.")
        return away_until

    def clean_login_username(self) -> str:
        username = str(self.cleaned_data.get("login_username") or "").strip()
        if username and User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("This login is taken.")
        return username

    def clean_login_password(self) -> str:
        password = str(self.cleaned_data.get("login_password") or "")
        if password:
            password_validation.validate_password(password)
        return password


LOGIN_FIELDS = ["login_username", "login_email", "login_password"]


@admin.register(Person)
class PersonAdmin(TeamScopedAdmin):
    form = PersonForm
    list_display = ["display_name", "is_bot", "away_until", "user", "created_at"]
    list_filter = ["is_bot", "memberships__team"]
    search_fields = ["display_name", "identities__value"]
    autocomplete_fields = ["user"]
    lead_readonly_fields = ("user",)  # a lead creates a login for a person who has none; never moves one
    inlines = [IdentityInline, PersonMembershipInline]

    def get_fields(self, request: HttpRequest, obj: Person | None = None) -> Any:
        has_login = obj is not None and obj.user_id is not None
        if request.user.is_superuser:
            return ["display_name", "is_bot", "away_until", "user", *([] if has_login else LOGIN_FIELDS)]
        if has_login:
            return ["display_name", "is_bot", "away_until", "user"]
        return ["display_name", "is_bot", "away_until", *LOGIN_FIELDS]

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        """A lead deletes only someone who belongs to no team but theirs (and whose history allows it)."""
        if not super().has_delete_permission(request, obj) or not isinstance(obj, Person):
            return super().has_delete_permission(request, obj)
        access = admin_access(request)
        return all(access.leads(team) for team in obj.memberships.values_list("team_id", flat=True))

    def delete_model(self, request: HttpRequest, obj: Person) -> None:
        from reviews.services.teams import person_delete

        person_delete(person=obj, actor=admin_actor(request))

    def save_model(self, request: HttpRequest, obj: Person, form: Any, change: bool) -> None:
        from reviews.services.people import person_away_set

        away_until = obj.away_until
        if change:  # the away mark goes through its service, audited
            obj.away_until = Person.objects.filter(pk=obj.pk).values_list("away_until", flat=True).first()
        else:
            obj.away_until = None
        super().save_model(request, obj, form, change)
        person_away_set(person=obj, away_until=away_until, actor=admin_actor(request))
        username = form.cleaned_data.get("login_username")
        if username:
            from reviews.services.onboarding import person_login_create

            person_login_create(
                person=obj,
                username=username,
                email=form.cleaned_data.get("login_email", ""),
                password=form.cleaned_data.get("login_password", ""),
            )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        from reviews.services.onboarding import lead_logins_enable

        super().save_related(request, form, formsets, change)
        lead_logins_enable(person_ids=[form.instance.pk])


@admin.register(Identity)
class IdentityAdmin(TeamScopedAdmin):
    """Leads see their people's identities and every unresolved one, to attach it to a person (`reviews.access`)."""

    may_delete = SUPERUSERS  # detach (empty the person) instead: commits and pairing keep pointing at it
    list_display = ["value", "kind", "connection", "person", "display_name"]
    list_filter = ["kind", "connection", ("person", admin.EmptyFieldListFilter)]
    search_fields = ["value", "display_name", "person__display_name"]
    autocomplete_fields = ["person"]  # connections: a plain choice (their autocomplete is superusers')
    fields = ["person", "kind", "connection", "value", "external_id", "display_name"]

    def save_model(self, request: HttpRequest, obj: Identity, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        from reviews.services.people import identity_attach

        before = Identity.objects.select_related("person").filter(pk=obj.pk).first() if change else None
        attached = before is not None and "person" in form.changed_data and obj.person is not None
        if attached and obj.person is not None:
            identity_attach(identity=obj, person=obj.person, actor=admin_actor(request))
        super().save_model(request, obj, form, change)
        rest = [name for name in form.changed_data if not (attached and name == "person")]
        changes = field_changes(fields_of(before, rest), fields_of(obj, rest))
        if changes:
            team = obj.person.memberships.values_list("team_id", flat=True).first() if obj.person else None
            audit_event_record(
                actor=admin_actor(request),
                action="identity.change" if change else "identity.create",
                target=obj,
                team=Team.objects.filter(pk=team).first() if team is not None else None,
                changes=changes,
            )


@admin.register(Team)
class TeamAdmin(TeamScopedAdmin):
    may_add = SUPERUSERS  # a new team is an instance-wide decision: a superuser's
    may_delete = SUPERUSERS  # and so is its end; a team with a record is not deleted at all
    form = TeamForm  # the chat webhook URL is a secret: set or not, and a field to replace it
    fields = [
        "name",
        "slug",
        "review_within_hours",
        "max_pr_size",
        "slack_webhook_url",
        "clear_slack_webhook_url",
        "archived",
    ]
    list_display = ["name", "slug", "review_within_hours", "max_pr_size"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["archived"]  # the "archive" and "unarchive" actions change it, audited
    inlines = [MembershipInline]
    actions = ["archive", "unarchive"]

    def save_model(self, request: HttpRequest, obj: Team, form: Any, change: bool) -> None:
        from reviews.services.teams import agreement_of

        before = agreement_of(Team.objects.filter(pk=obj.pk).first()) if change else {}
        super().save_model(request, obj, form, change)
        changes = field_changes(before, agreement_of(obj))
        if changes:
            action = "agreement.change" if change else "team.create"
            audit_event_record(actor=admin_actor(request), action=action, target=obj, team=obj, changes=changes)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        if protected:
            protected = [*protected, "Archive the team instead (the 'Archive' action): its history stays."]
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Team) -> None:
        from reviews.services.teams import team_delete

        team_delete(team=obj, actor=admin_actor(request))

    @admin.action(description="Archive selected teams (their history stays; they leave the pages' lists)")
    def archive(self, request: HttpRequest, queryset: QuerySet[Team]) -> None:
        self._archive(request, queryset, archived=True)

    @admin.action(description="Bring selected teams back from the archive")
    def unarchive(self, request: HttpRequest, queryset: QuerySet[Team]) -> None:
        self._archive(request, queryset, archived=False)

    def _archive(self, request: HttpRequest, queryset: QuerySet[Team], *, archived: bool) -> None:
        from reviews.services.teams import team_archive

        access = admin_access(request)
        done = 0
        for team in queryset:
            if access.leads(team.pk):
                team_archive(team=team, actor=admin_actor(request), archived=archived)
                done += 1
        self.message_user(request, f"{'Archived' if archived else 'Brought back'} {done} teams.", messages.SUCCESS)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        from reviews.services.onboarding import lead_logins_enable

        super().save_related(request, form, formsets, change)
        lead_logins_enable(person_ids=form.instance.memberships.values_list("person_id", flat=True))


@admin.register(Membership)
class MembershipAdmin(TeamScopedAdmin):
    list_display = ["person", "team", "role", "joined_at"]
    list_filter = ["team", "role"]
    search_fields = ["person__display_name", "team__name"]
    autocomplete_fields = ["person", "team"]

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        """Through `membership_set` / `membership_remove`: audited, and the person's open pull requests evaluated
        again. A membership moved to another person or team is the old one removed and a new one set."""
        from reviews.services.teams import membership_remove, membership_set

        actor = admin_actor(request)
        before = Membership.objects.select_related("team", "person").filter(pk=obj.pk).first() if change else None
        if before is not None and (before.team_id, before.person_id) != (obj.team_id, obj.person_id):
            membership_remove(team=before.team, person=before.person, actor=actor)
        saved = membership_set(team=obj.team, person=obj.person, role=obj.role, actor=actor)
        obj.pk, obj.joined_at = saved.pk, saved.joined_at
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        from reviews.services.teams import membership_remove

        membership_remove(team=obj.team, person=obj.person, actor=admin_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset.select_related("team", "person"):
            self.delete_model(request, membership)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        from reviews.services.onboarding import lead_logins_enable

        super().save_related(request, form, formsets, change)
        lead_logins_enable(person_ids=[form.instance.person_id])


@admin.register(Connection)
class ConnectionAdmin(SuperuserOnlyAdmin):
    form = ConnectionForm
    fieldsets = [
        (None, {"fields": ["provider", "name", "base_url", "web_url"]}),
        ("Token", {"fields": ["api_token", "clear_api_token", "webhook_secret", "clear_webhook_secret"]}),
        (
            "GitHub App (instead of a token)",
            {
                "fields": [
                    "app_id",
                    "app_private_key",
                    "clear_app_private_key",
                    "app_installation_id",
                    "app_account",
                    "report_as_check_run",
                    "installations",
                ]
            },
        ),
    ]
    readonly_fields = ["installations"]
    list_display = ["name", "provider", "base_url", "authenticates_as", "api_token_state", "webhook_secret_state"]
    list_filter = ["provider"]
    search_fields = ["name", "base_url"]

    def save_model(self, request: HttpRequest, obj: Connection, form: Any, change: bool) -> None:
        """Audited: the fields changed, and for a secret only that it was replaced or cleared, never its value."""
        from reviews.services.teams import CONNECTION_FIELDS

        before = Connection.objects.filter(pk=obj.pk).first() if change else None
        super().save_model(request, obj, form, change)
        changes = field_changes(fields_of(before, CONNECTION_FIELDS), fields_of(obj, CONNECTION_FIELDS))
        for name in ("api_token", "webhook_secret", "app_private_key"):
            old, new = getattr(before, name, "") or "", getattr(obj, name) or ""
            if old != new:
                changes[name] = {"before": "set" if old else "", "after": "replaced" if new else ""}
        if changes:
            audit_event_record(
                actor=admin_actor(request), action="connection.change", target=obj, team=None, changes=changes
            )

    @admin.display(description="installations")
    def installations(self, connection: Connection) -> str:
        """Each installation of the App as GitHub last reported it, and why Tandem cannot use it, if it cannot."""
        from reviews.services.credentials import installation_problem

        rows = connection.app_installations.order_by("account_login") if connection.pk else []
        return (
            format_html_join(
                "\n",
                "<p>{} ({}, {}): {}{}</p>",
                (
                    (
                        row.account_login or "?",
                        row.account_type or "account",
                        row.installation_id,
                        installation_problem(row) or "active",
                        f" Last token error: {row.token_error}" if row.token_error else "",
                    )
                    for row in rows
                ),
            )
            or "none yet"
        )

    @admin.display(description="authenticates as")
    def authenticates_as(self, connection: Connection) -> str:
        from reviews.services.credentials import connection_app, connection_token

        app = connection_app(connection)
        if app is not None:
            key = "its key set" if app.private_key else "NO private key"
            return f"GitHub App {app.app_id} ({key}, from {app.source})"
        return "API token" if connection_token(connection) else "nothing: no token"

    @admin.display(description="API token")
    def api_token_state(self, connection: Connection) -> str:
        return secret_state(connection, "api_token")

    @admin.display(description="webhook secret")
    def webhook_secret_state(self, connection: Connection) -> str:
        return secret_state(connection, "webhook_secret")


REPOSITORY_AUDITED = frozenset(
    {"connection", "external_id", "full_path", "default_branch", "web_url", "team", "codeowners", "is_active"}
)
REEVALUATE_ON = frozenset({"codeowners", "team", "is_active", "default_branch"})


@admin.register(Repository)
class RepositoryAdmin(TeamScopedAdmin):
    list_display = ["full_path", "connection", "team", "default_branch", "synced_until", "is_active", "access"]
    list_filter = ["connection__provider", "connection", "team", "is_active"]
    search_fields = ["full_path", "external_id"]
    autocomplete_fields = ["team"]  # connections: a plain choice (their autocomplete is superusers')
    readonly_fields = ["synced_until", "sync_etags", "app_installation", "access_error"]
    actions = ["resync"]

    def save_model(self, request: HttpRequest, obj: Repository, form: Any, change: bool) -> None:
        """Audited; a pasted CODEOWNERS, a new owning team (its policy) or a repository switched on or off changes
        what its open pull requests are judged by, so they are evaluated again."""
        from reviews.selectors.affected import open_pull_requests_of_repositories
        from reviews.services.enqueue import pull_request_evaluations_enqueue

        names = [name for name in form.changed_data if name in REPOSITORY_AUDITED]
        before = fields_of(Repository.objects.filter(pk=obj.pk).first(), names) if change else {}
        super().save_model(request, obj, form, change)
        changes = field_changes(before, fields_of(obj, names))
        if changes:
            action = "repository.codeowners" if set(changes) == {"codeowners"} else "repository.change"
            audit_event_record(actor=admin_actor(request), action=action, target=obj, team=obj.team, changes=changes)
        if set(changes) & REEVALUATE_ON:
            pull_request_evaluations_enqueue(
                pull_request_ids=open_pull_requests_of_repositories(repository_ids=[obj.pk])
            )

    @admin.display(description="access")
    def access(self, repository: Repository) -> str:
        """What stands in the way of reading it or posting to it, as far as Tandem knows; "ok" when nothing."""
        return repository.access_error or "ok"

    def delete_model(self, request: HttpRequest, obj: Repository) -> None:
        from reviews.services.teams import repository_delete

        repository_delete(repository=obj, actor=admin_actor(request))

    @admin.action(description="Re-sync selected repositories now")
    def resync(self, request: HttpRequest, queryset: QuerySet[Repository]) -> None:
        from reviews.tasks import sync_repository

        for pk in queryset.values_list("pk", flat=True):
            transaction.on_commit(partial(sync_repository.delay, pk))
        self.message_user(request, f"Queued a sync of {queryset.count()} repositories.", messages.SUCCESS)


@admin.register(SyncRun)
class SyncRunAdmin(FactAdmin):
    list_display = ["repository", "status", "full", "started_at", "finished_at", "api_calls", "pull_requests_synced"]
    list_filter = ["status", "full", "repository__connection__provider"]
    search_fields = ["repository__full_path"]
    autocomplete_fields = ["repository"]
    date_hierarchy = "started_at"


class ChangedFileInline(ScopedInline):
    editable = False
    model = ChangedFile
    extra = 0
    fields = ("path", "status", "additions", "deletions")
    readonly_fields = fields
    can_delete = False


class ReviewInline(ScopedInline):
    editable = False
    model = Review
    extra = 0
    fields = ("reviewer", "state", "submitted_at", "commit_sha", "comment_count")
    readonly_fields = fields
    can_delete = False


@admin.register(PullRequest)
class PullRequestAdmin(FactAdmin):
    list_display = ["__str__", "title", "author", "state", "draft", "created_at", "merged_at"]
    list_filter = ["state", "draft", "repository__team", "repository__connection__provider", "repository"]
    search_fields = ["title", "repository__full_path", "=number", "head_ref", "head_sha"]
    autocomplete_fields = ["repository", "author", "merged_by", "requested_reviewers"]
    raw_id_fields = ["commits"]
    date_hierarchy = "created_at"
    list_select_related = ["repository", "author"]
    inlines = [ReviewInline, ChangedFileInline]
    actions = ["override_policy", "resync_repositories"]

    @admin.action(description="Re-sync the repositories of selected pull requests", permissions=["superuser"])
    def resync_repositories(self, request: HttpRequest, queryset: QuerySet[PullRequest]) -> None:
        from reviews.tasks import sync_repository

        repositories = set(queryset.values_list("repository_id", flat=True))
        for pk in repositories:
            transaction.on_commit(partial(sync_repository.delay, pk))
        self.message_user(request, f"Queued a sync of {len(repositories)} repositories.", messages.SUCCESS)

    @admin.action(description="Override the review policy (asks for a reason)")
    def override_policy(self, request: HttpRequest, queryset: QuerySet[PullRequest]):  # type: ignore[no-untyped-def]
        from reviews.services.policies import pull_request_override

        return ask_then_act(
            self,
            request,
            queryset,
            form_class=OverrideForm,
            action="override_policy",
            title="Override the review policy",
            intro="Break glass for these pull requests. Their status turns to success, marked as overridden; the "
            "override is recorded with your name and reason, and a follow-up review falls due.",
            submit="Override",
            act=lambda pull_request, person, data: pull_request_override(
                pull_request=pull_request, person=person, actor=admin_actor(request), **data
            ),
            done="Overrode {} pull requests; follow-up reviews are due.",
        )


@admin.register(ChangedFile)
class ChangedFileAdmin(FactAdmin):
    list_display = ["path", "pull_request", "status", "additions", "deletions"]
    list_filter = ["status"]
    search_fields = ["path"]
    autocomplete_fields = ["pull_request"]


@admin.register(Commit)
class CommitAdmin(FactAdmin):
    list_display = ["sha", "repository", "author", "authored_at"]
    list_filter = ["repository"]
    search_fields = ["sha", "message", "author__display_name"]
    autocomplete_fields = ["repository", "author", "author_identity", "committer_identity", "co_authors"]
    date_hierarchy = "authored_at"
    list_select_related = ["repository", "author"]


@admin.register(Review)
class ReviewAdmin(FactAdmin):
    list_display = ["pull_request", "reviewer", "state", "submitted_at", "comment_count"]
    list_filter = ["state", "pull_request__repository__team"]
    search_fields = ["reviewer__display_name", "pull_request__title", "body"]
    autocomplete_fields = ["pull_request", "reviewer"]
    date_hierarchy = "submitted_at"
    list_select_related = ["pull_request__repository", "reviewer"]


@admin.register(Comment)
class CommentAdmin(FactAdmin):
    list_display = ["pull_request", "author", "kind", "is_system", "created_at"]
    list_filter = ["kind", "is_system"]
    search_fields = ["body", "author__display_name"]
    autocomplete_fields = ["pull_request", "author"]
    list_select_related = ["pull_request__repository", "author"]


@admin.register(CommitStatus)
class CommitStatusAdmin(FactAdmin):
    list_display = ["context", "state", "sha", "repository", "source", "updated_at"]
    list_filter = ["state", "source"]
    search_fields = ["context", "sha"]
    autocomplete_fields = ["repository"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(SuperuserOnlyAdmin):
    """Deliveries come only from the VCS and are written only by their processing: superusers read them and
    replay the failed and dead-lettered ones."""

    may_add = NOBODY
    may_change = NOBODY
    may_delete = NOBODY
    list_display = [
        "delivery_id",
        "provider",
        "event",
        "action",
        "status",
        "attempts",
        "dispatches",
        "next_attempt_at",
        "received_at",
    ]
    list_filter = ["status", "provider", "event"]
    search_fields = ["delivery_id", "event", "error"]
    date_hierarchy = "received_at"
    fields = [
        "provider",
        "delivery_id",
        "event",
        "action",
        "connection",
        "status",
        "error",
        "attempts",
        "next_attempt_at",
        "dispatches",
        "claimed_at",
        "claim_token",
        "received_at",
        "processed_at",
        "headers",
        "body",
    ]
    actions = ["reprocess"]

    @admin.action(description="Replay selected failed, ignored or dead-lettered deliveries")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        from reviews.services.enqueue import delivery_process_now
        from reviews.services.webhooks import webhook_delivery_requeue

        requeued = [delivery.pk for delivery in queryset if webhook_delivery_requeue(delivery=delivery)]
        for pk in requeued:
            transaction.on_commit(partial(delivery_process_now, pk))
        skipped = queryset.count() - len(requeued)
        self.message_user(request, f"Queued {len(requeued)} deliveries for reprocessing.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Left {skipped} alone: pending, processing or processed.", messages.WARNING)


class PolicyForm(forms.ModelForm[Any]):
    reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why this change (kept with the version, in its history and the audit trail).",
    )

    class Meta:
        model = Policy
        fields = ["team", "repository", "document"]
        widgets = {"document": forms.Textarea(attrs={"rows": 30, "cols": 100, "style": "font-family: monospace"})}

    def clean_document(self) -> str:
        from reviews.services.policies import policy_document_validate

        document: str = self.cleaned_data["document"]
        policy_document_validate(document)  # ValidationError lists each problem with its line
        return document


@admin.register(Policy)
class PolicyAdmin(TeamScopedAdmin):
    may_delete = NOBODY  # a policy is part of the record of what each verdict was measured against
    form = PolicyForm
    list_display = ["__str__", "team", "repository", "updated_at", "updated_by"]
    search_fields = ["team__name", "repository__full_path", "document"]
    autocomplete_fields = ["team", "repository"]
    readonly_fields = ["updated_at", "updated_by"]

    def save_model(self, request: HttpRequest, obj: Policy, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        from reviews.services.policies import policy_save

        saved = policy_save(
            document=obj.document,
            team=obj.team,
            repository=obj.repository,
            actor=admin_actor(request),
            reason=form.cleaned_data.get("reason", ""),
        )
        obj.pk = saved.pk


@admin.register(PolicyVersion)
class PolicyVersionAdmin(RecordAdmin):
    """Each version as it took effect, with its author and reason; a restore is a new version (a policy's page)."""

    list_display = ["policy", "number", "author", "token", "reason", "restored_from", "created_at"]
    list_filter = ["policy__team", "policy__repository"]
    search_fields = ["policy__team__name", "policy__repository__full_path", "reason", "document"]
    autocomplete_fields = ["policy"]
    date_hierarchy = "created_at"
    list_select_related = ["policy__team", "policy__repository", "author", "token"]


@admin.register(PolicyEvaluation)
class PolicyEvaluationAdmin(RecordAdmin):
    list_display = ["pull_request", "head_sha", "outcome", "description", "evaluated_at", "reported_at"]
    list_filter = ["outcome", "pull_request__repository__team"]
    search_fields = ["pull_request__title", "head_sha"]
    autocomplete_fields = ["pull_request", "policy"]
    readonly_fields = ["trace"]
    date_hierarchy = "evaluated_at"


class FollowupFilter(admin.SimpleListFilter):
    title = "follow-up review"
    parameter_name = "followup"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        return [("overdue", "Overdue"), ("due", "Due, not yet overdue"), ("done", "Done")]

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        from django.utils import timezone

        now = timezone.now()
        if self.value() == "overdue":
            return queryset.filter(followup_done_at__isnull=True, followup_due_at__lt=now)
        if self.value() == "due":
            return queryset.filter(followup_done_at__isnull=True, followup_due_at__gte=now)
        if self.value() == "done":
            return queryset.filter(followup_done_at__isnull=False)
        return queryset


@admin.register(Override)
class OverrideAdmin(RecordAdmin):
    list_display = ["pull_request", "overridden_by", "created_at", "followup_due_at", "followup_done_at"]
    list_filter = [FollowupFilter, "pull_request__repository__team"]
    actions = ["mark_followup_done", "withdraw"]

    @admin.action(description="Withdraw the override (asks why; the verdict is evaluated again)")
    def withdraw(self, request: HttpRequest, queryset: QuerySet[Override]):  # type: ignore[no-untyped-def]
        from reviews.services.policies import override_withdraw

        return ask_then_act(
            self,
            request,
            queryset,
            form_class=WithdrawForm,
            action="withdraw",
            title="Withdraw the override",
            intro="The override stays on the record with its withdrawal; the pull request's verdict is evaluated "
            "again without it.",
            submit="Withdraw",
            act=lambda override, person, data: override_withdraw(
                override=override, person=person, reason=data["reason"], actor=admin_actor(request)
            ),
            done="Withdrew {} overrides.",
        )

    @admin.action(description="Record the follow-up review (asks what was reviewed)")
    def mark_followup_done(self, request: HttpRequest, queryset: QuerySet[Override]):  # type: ignore[no-untyped-def]
        from reviews.services.policies import override_followup_complete

        return ask_then_act(
            self,
            request,
            queryset,
            form_class=FollowUpForm,
            action="mark_followup_done",
            title="Record the follow-up review",
            intro="A follow-up review is done by someone who neither wrote the change nor overrode it, "
            "and says what was reviewed.",
            submit="Record the review",
            act=lambda override, person, data: override_followup_complete(
                override=override, person=person, note=data["note"], actor=admin_actor(request)
            ),
            done="Recorded {} follow-up reviews.",
        )

    search_fields = ["reason", "incident_reference", "pull_request__title"]
    autocomplete_fields = ["pull_request", "overridden_by", "followup_by"]


@admin.register(OverrideWithdrawal)
class OverrideWithdrawalAdmin(RecordAdmin):
    """Corrections of overrides, written by the overrides' "withdraw" action."""

    list_display = ["override", "withdrawn_by", "reason", "created_at"]
    list_filter = ["override__pull_request__repository__team"]
    search_fields = ["reason", "override__pull_request__title", "withdrawn_by__display_name"]
    autocomplete_fields = ["override", "withdrawn_by"]
    date_hierarchy = "created_at"


@admin.register(FollowUpReview)
class FollowUpReviewAdmin(RecordAdmin):
    """Follow-up reviews overrides owed, written by the overrides' "record the follow-up review" action."""

    list_display = ["override", "reviewer", "note", "review", "completed_at"]
    list_filter = ["override__pull_request__repository__team"]
    search_fields = ["note", "override__pull_request__title", "reviewer__display_name"]
    autocomplete_fields = ["override", "reviewer", "review"]
    date_hierarchy = "completed_at"


@admin.register(PolicyViolation)
class PolicyViolationAdmin(RecordAdmin):
    list_display = ["pull_request", "outcome", "recorded_at"]
    list_filter = ["outcome", "pull_request__repository__team"]
    search_fields = ["pull_request__title"]
    autocomplete_fields = ["pull_request", "evaluation"]


@admin.register(RiskSignal)
class RiskSignalAdmin(FactAdmin):
    list_display = ["reference", "repository", "service_name", "occurred_at"]
    search_fields = ["reference", "service_name", "repository__full_path"]
    autocomplete_fields = ["repository"]


class PairingParticipantInline(ScopedInline):
    model = PairingParticipant
    extra = 0
    autocomplete_fields = ["person"]


@admin.register(PairingSession)
class PairingSessionAdmin(TeamScopedAdmin):
    list_display = ["__str__", "source", "repository", "branch", "started_at", "ended_at"]
    list_filter = ["source", "repository"]
    search_fields = ["external_id", "branch", "participants__display_name"]
    autocomplete_fields = ["repository"]
    date_hierarchy = "started_at"
    inlines = [PairingParticipantInline]

    def _leads_everyone_in(self, request: HttpRequest, obj: Model | None) -> bool:
        return obj is None or not pairing_people_beyond(obj.pk, admin_access(request))

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_change_permission(request, obj) and self._leads_everyone_in(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_delete_permission(request, obj) and self._leads_everyone_in(request, obj)


@admin.register(ApiToken)
class ApiTokenAdmin(RecordAdmin):
    """A token is created here (a new record) and revoked by an action; its name and teams never change, and it
    is never deleted: another scope is another token."""

    may_add = LEADS
    list_display = ["name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "teams"]
    search_fields = ["name", "prefix"]
    filter_horizontal = ["teams"]
    fields = ["name", "teams", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        """Only a new token reaches here (nobody changes one): `api_token_create`, audited in each of its teams."""
        from reviews.services.tokens import api_token_create

        token, secret = api_token_create(
            name=obj.name, teams=list(form.cleaned_data["teams"]), actor=admin_actor(request)
        )
        obj.pk, obj.prefix, obj.key_hash, obj.created_by, obj.created_at = (
            token.pk,
            token.prefix,
            token.key_hash,
            token.created_by,
            token.created_at,
        )
        obj._state.adding, obj._state.db = False, token._state.db
        self.message_user(request, f"Token created. Copy it now, it is not shown again: {secret}", messages.WARNING)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        form.save_m2m = lambda: None  # its teams were set, and audited, by api_token_create
        super().save_related(request, form, formsets, change)

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        from reviews.services.tokens import api_token_revoke

        access = admin_access(request)
        revoked, shared = 0, []
        for token in queryset.filter(revoked_at__isnull=True).prefetch_related("teams"):
            # A token several teams share is revoked only by someone who leads every one of them.
            if not all(access.leads(team.pk) for team in token.teams.all()):
                shared.append(token.name)
                continue
            api_token_revoke(token=token, actor=admin_actor(request), reason="revoked in the admin")
            revoked += 1
        self.message_user(request, f"Revoked {revoked} tokens.", messages.SUCCESS)
        if shared:
            names = ", ".join(shared)
            self.message_user(request, f"Left {names}: other teams use it too; ask their leads.", messages.WARNING)
