"""Team leads in the admin: a staff user who leads a team sees, changes and points at only that team's rows.

Superusers see everything. A lead needs no Django model permissions for the scoped models: leading a team is
the permission, and `reviews.access` is the boundary. It holds in four places, so that no form can cross it:
1. what a lead lists, opens, searches and autocompletes (`get_queryset`: anything else is a 404);
2. the choices of every foreign key, one-to-one and many-to-many field, on the form and in every inline, so a
   posted id of another team's row is "Select a valid choice";
3. a check of every related object the form cleaned, whatever field produced it (a custom form field too);
4. a refusal on save (`save_form`, `save_formset`, `save_related`), inside the admin's transaction: a related
   object outside the lead's teams, or a row that ends up in none of them, rolls the whole save back.

Who may add, change and delete is said once per admin (`may_add`, `may_change`, `may_delete`): leads (and
superusers), superusers only, or nobody. Facts from GitHub, GitLab and CI/CD (`FactAdmin`) and records of
exceptions (`RecordAdmin`) are changed by nobody through a form: webhooks, sync and the services' actions write
them. A row whose deletion would erase such a record (`KEPT_HISTORY`) is refused with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.utils import NotRelationField, get_fields_from_path
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db.models import Model, ProtectedError, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from reviews.access import Access, outside, request_access, rows_a_lead_may_point_at, rows_a_lead_reaches

OUTSIDE_MESSAGE = "Select a valid choice: {rows} is not one of your teams'."

Who = Literal["leads", "superusers", "nobody"]
LEADS: Who = "leads"  # the leads of the row's teams, and superusers
SUPERUSERS: Who = "superusers"
NOBODY: Who = "nobody"

# model label -> what a row of it keeps, which deleting it would erase: (what, model label, lookup to the row).
# Labels, not classes: reviews never imports telemetry.
KEPT_HISTORY: dict[str, tuple[tuple[str, str, str], ...]] = {
    "reviews.Team": (
        ("its policy", "reviews.Policy", "team"),
        ("overrides of its pull requests", "reviews.Override", "pull_request__repository__team"),
        ("policy violations", "reviews.PolicyViolation", "pull_request__repository__team"),
        ("API tokens", "reviews.ApiToken", "teams"),
        ("suspect changes of its services", "telemetry.SuspectChange", "deployment__service__team"),
    ),
    "reviews.Person": (
        ("overrides they gave", "reviews.Override", "overridden_by"),
        ("follow-up reviews they did", "reviews.Override", "followup_by"),
        ("suspect verdicts they gave", "telemetry.SuspectChange", "decided_by"),
        ("pull requests they authored", "reviews.PullRequest", "author"),
        ("reviews they gave", "reviews.Review", "reviewer"),
        ("commits they authored", "reviews.Commit", "author"),
        ("pairing sessions they took part in", "reviews.PairingParticipant", "person"),
    ),
    "reviews.Repository": (
        ("pull requests", "reviews.PullRequest", "repository"),
        ("commits", "reviews.Commit", "repository"),
        ("its policy", "reviews.Policy", "repository"),
        ("deployments", "telemetry.Deployment", "repository"),
    ),
}


def kept_history(obj: Model) -> list[str]:
    """What deleting this row would erase from the record, in words; empty when nothing."""
    found = []
    for what, label, lookup in KEPT_HISTORY.get(obj._meta.label, ()):
        count = apps.get_model(label)._default_manager.filter(**{lookup: obj}).count()
        if count:
            found.append(f"{count} {what}")
    return found


def may(who: Who, request: HttpRequest) -> bool:
    """Whether the request's user is among `who`; a lead is one in the admin (staff, leading a team)."""
    if who == NOBODY:
        return False
    return request.user.is_superuser or (who == LEADS and is_lead(request))


def admin_access(request: HttpRequest) -> Access:
    return request_access(request, admin=True)


def is_lead(request: HttpRequest) -> bool:
    access = admin_access(request)
    return access.is_everything or bool(access.led)


def related_outside(cleaned_data: dict[str, Any], access: Access) -> dict[str, list[Model]]:
    """The related objects among a form's cleaned values that the lead may not point at, by field name."""
    found: dict[str, list[Model]] = {}
    for name, value in cleaned_data.items():
        rows = [value] if isinstance(value, Model) else list(value) if isinstance(value, QuerySet | list) else []
        by_model: dict[type[Model], list[Model]] = defaultdict(list)
        for row in rows:
            if isinstance(row, Model) and row.pk is not None:
                by_model[type(row)].append(row)
        bad = []
        for model, of_model in by_model.items():
            refused = outside(model, [row.pk for row in of_model], access)
            bad += [row for row in of_model if row.pk in refused]
        if bad:
            found[name] = bad
    return found


def _scope_checked(form_class: type[forms.BaseForm], access: Access) -> type[forms.BaseForm]:
    """The form class, with a clean() that refuses every related object outside the lead's teams."""
    if access.is_everything:
        return form_class

    def clean(self: forms.BaseForm) -> Any:
        cleaned = form_class.clean(self)
        for name, rows in related_outside(self.cleaned_data, access).items():
            error = OUTSIDE_MESSAGE.format(rows=", ".join(str(row) for row in rows))
            self.add_error(name if name in self.fields else None, error)
        return cleaned

    return type(form_class.__name__, (form_class,), {"clean": clean})


def _refuse_outside(cleaned_data: dict[str, Any], access: Access) -> None:
    bad = related_outside(cleaned_data, access)
    if bad:
        raise PermissionDenied(f"Not one of your teams' rows: {', '.join(sorted(bad))}.")


class _LeadScope:
    """What model admins and inlines share: choices and validation from `reviews.access`."""

    def _scoped_choices(self, db_field: Any, request: HttpRequest, kwargs: dict[str, Any]) -> None:
        access = admin_access(request)
        if access.is_everything:
            return
        queryset = kwargs.get("queryset")
        if queryset is None:
            queryset = self.get_field_queryset(None, db_field, request)  # type: ignore[attr-defined]
        if queryset is None:
            queryset = db_field.related_model._default_manager.all()
        kwargs["queryset"] = rows_a_lead_may_point_at(queryset, access)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        self._scoped_choices(db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        self._scoped_choices(db_field, request, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return rows_a_lead_reaches(super().get_queryset(request), admin_access(request))  # type: ignore[misc]


class TeamScopedAdmin(_LeadScope, admin.ModelAdmin[Any]):
    """A model admin for leads. Which rows are a team's is `reviews.access.TEAM_PATHS`, not the admin's."""

    may_add: Who = LEADS
    may_change: Who = LEADS
    may_delete: Who = LEADS
    lead_readonly_fields: tuple[str, ...] = ()  # fields a lead sees but only a superuser sets

    def _reaches(self, request: HttpRequest, obj: Model | None) -> bool:
        return request.user.is_superuser or obj is None or self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_lead(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may(LEADS, request) and self._reaches(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may(self.may_change, request) and self._reaches(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may(self.may_add, request)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may(self.may_delete, request) and self._reaches(request, obj)

    def has_superuser_permission(self, request: HttpRequest) -> bool:
        """For actions with `allowed_permissions=["superuser"]`."""
        return bool(request.user.is_superuser)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """Django's answer, with every row that keeps part of the record listed as protected: the delete page and
        the "delete selected" action then say why and delete nothing."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        kept = [f"{obj}: {', '.join(history)} (the record is kept)" for obj in objs if (history := kept_history(obj))]
        if kept:
            # The reason first: the rows the record needs, rather than which permissions the cascade would lack.
            return deleted, counts, set(), [*kept, *protected]
        return deleted, counts, perms_needed, protected

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ProtectedError as error:
            return self._refused_deletion(request, error)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        try:
            super().delete_queryset(request, queryset)
        except ProtectedError as error:
            raise PermissionDenied(_protected_message(error)) from error

    def _refused_deletion(self, request: HttpRequest, error: ProtectedError) -> HttpResponse:
        self.message_user(request, _protected_message(error), messages.ERROR)
        opts = self.model._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = super().get_readonly_fields(request, obj)
        return readonly if request.user.is_superuser else [*readonly, *self.lead_readonly_fields]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        return _scope_checked(super().get_form(request, obj, change, **kwargs), admin_access(request))

    def get_changelist_form(self, request: HttpRequest, **kwargs: Any) -> Any:
        return _scope_checked(super().get_changelist_form(request, **kwargs), admin_access(request))

    def get_list_filter(self, request: HttpRequest) -> Any:
        """A lead's filters offer only the related rows of what they see, not every team's."""
        filters = super().get_list_filter(request)
        if request.user.is_superuser:
            return filters
        return [_related_only(self.model, entry) for entry in filters]

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        _refuse_outside(form.cleaned_data, admin_access(request))
        return super().save_form(request, form, change)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        access = admin_access(request)
        # The page's own row, which a new row's link points at, is checked by save_related once its inlines
        # are saved: a new person is within the lead's teams only through the membership saved here.
        parent = getattr(getattr(formset, "fk", None), "name", None)
        for inline_form in formset.forms:
            if getattr(inline_form, "cleaned_data", None) and not formset._should_delete_form(inline_form):
                cleaned = {name: value for name, value in inline_form.cleaned_data.items() if name != parent}
                _refuse_outside(cleaned, access)
        super().save_formset(request, form, formset, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        access = admin_access(request)
        if change and not access.is_everything:
            _keep_links_outside(form, access)
        super().save_related(request, form, formsets, change)
        if not rows_a_lead_reaches(self.model._default_manager.filter(pk=form.instance.pk), access).exists():
            raise PermissionDenied("The row would belong to none of the teams you lead.")


def _protected_message(error: ProtectedError) -> str:
    kept = sorted({str(row._meta.verbose_name_plural) for row in error.protected_objects})
    return f"Not deleted: it is still referred to by {', '.join(kept)}, which are kept as the record."


class FactAdmin(TeamScopedAdmin):
    """Facts from GitHub, GitLab and CI/CD: webhooks and sync write them, nobody edits them in a form."""

    may_add = NOBODY
    may_change = NOBODY
    may_delete = NOBODY


class RecordAdmin(TeamScopedAdmin):
    """Records of exceptions (overrides, verdicts, violations, tokens): append-only. An action that calls a
    service adds a record; nobody edits or deletes one in a form."""

    may_add = NOBODY
    may_change = NOBODY
    may_delete = NOBODY


def _keep_links_outside(form: Any, access: Access) -> None:
    """A lead neither adds nor removes another team's rows in a many-to-many field: links to rows outside their
    teams, which the lead's choices do not offer, are kept as they were."""
    instance = form.instance
    for field in instance._meta.many_to_many:
        if field.name not in form.cleaned_data:
            continue
        linked = set(getattr(instance, field.name).values_list("pk", flat=True))
        kept = outside(field.related_model, linked, access)
        if kept:
            chosen = list(form.cleaned_data[field.name])
            form.cleaned_data[field.name] = chosen + list(field.related_model._default_manager.filter(pk__in=kept))


def _related_only(model: type[Model], entry: Any) -> Any:
    if not isinstance(entry, str):
        return entry
    try:
        field = get_fields_from_path(model, entry)[-1]
    except (FieldDoesNotExist, NotRelationField):
        return entry
    return (entry, admin.RelatedOnlyFieldListFilter) if field.is_relation else entry


class ScopedInline(_LeadScope, admin.TabularInline[Any, Any]):
    """An inline for leads: its rows, choices and cleaned values are scoped like the page it sits on. An inline of
    facts or records (`editable = False`) is read-only for everyone: no "Add another", no delete box."""

    editable = True

    def _may_edit(self, request: HttpRequest) -> bool:
        return self.editable and may(LEADS, request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may(LEADS, request)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._may_edit(request)

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._may_edit(request)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.can_delete and self._may_edit(request)

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        formset.form = _scope_checked(formset.form, admin_access(request))  # type: ignore[assignment]
        return formset


class SuperuserOnlyAdmin(admin.ModelAdmin[Any]):
    """Instance-wide rows (connections, webhook deliveries): superusers only, as far as `may_*` allow."""

    may_add: Who = SUPERUSERS
    may_change: Who = SUPERUSERS
    may_delete: Who = SUPERUSERS

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser and may(self.may_change, request)

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser and may(self.may_add, request)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser and may(self.may_delete, request)
