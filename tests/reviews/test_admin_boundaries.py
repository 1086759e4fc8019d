"""Team boundaries in the admin, generated: for every model registered in the admin and every inline, every
foreign key, one-to-one and many-to-many field a lead can fill is posted, on add and on change, with another
team's row. The lead is a real one (a staff user, not a superuser, with a person who leads the team), the
views are the real admin views, and nothing may be saved. Where the lead may not edit a model at all (facts and
records) or a field of it, the page offers no field to point anywhere and a post changes nothing: that is the
guarantee there, and it is asserted, not skipped.

Actors: `lead` leads shop, `other_lead` leads search, `member` is a member of shop, `root` is a superuser.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import Model
from django.utils import timezone

from reviews import access
from reviews.admin_scoping import LEADS, ScopedInline, TeamScopedAdmin
from reviews.models import (
    Connection,
    Identity,
    RiskSignal,
    Team,
)
from tests.reviews.admin_world import FormFields, page_data, team_rows

pytestmark = pytest.mark.django_db

REFUSED = "Select a valid choice"


# --- the world: one row of every model for each of two teams ----------------------------------------------------


@dataclass
class World:
    shop: dict[str, Any]
    search: dict[str, Any]
    root: User

    @property
    def lead(self) -> User:
        return self.shop["lead_user"]  # type: ignore[no-any-return]


@pytest.fixture
def world() -> World:
    shop, search = team_rows("shop"), team_rows("search")
    return World(shop=shop, search=search, root=User.objects.create_superuser("root", password="pw"))


# --- what the admin offers: walked at collection time -------------------------------------------------------------


def _label(model: type[Model]) -> str:
    return model._meta.label


def _model(label: str) -> type[Model]:
    from django.apps import apps

    return apps.get_model(label)


def _relation_fields(model: type[Model], model_admin: Any, skip: str | None = None) -> list[str]:
    """The foreign key, one-to-one and many-to-many fields a form of this admin lets a person fill."""
    readonly = set(model_admin.readonly_fields)
    declared = model_admin.fields
    names = []
    for field in model._meta.get_fields():
        if field.auto_created or not field.is_relation or not field.concrete and not field.many_to_many:
            continue
        if field.many_to_many and not field.remote_field.through._meta.auto_created:
            continue  # through a model of its own: edited by an inline, not on this form
        if not getattr(field, "editable", False) or field.name in readonly or field.name == skip:
            continue
        if declared is not None and field.name not in declared:
            continue
        names.append(field.name)
    return names


def _walk_forms() -> Iterator[tuple[str, str, type[Model]]]:
    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, TeamScopedAdmin):
            for name in _relation_fields(model, model_admin):
                yield _label(model), name, model._meta.get_field(name).related_model


def _lead_may_set(label: str, name: str) -> bool:
    model_admin = admin.site._registry[_model(label)]
    return model_admin.may_change == LEADS and name not in model_admin.lead_readonly_fields


def _walk_inlines() -> Iterator[tuple[str, str, str, type[Model], bool]]:
    for model, model_admin in admin.site._registry.items():
        for inline_class in model_admin.inlines:
            inline = inline_class(model, admin.site)
            parent_fk = next(
                f.name
                for f in inline.model._meta.concrete_fields
                if f.is_relation and f.related_model is model and (inline.fk_name in (None, f.name))
            )
            for name in _relation_fields(inline.model, inline, skip=parent_fk):
                target = inline.model._meta.get_field(name).related_model
                yield _label(model), inline_class.__name__, name, target, inline.editable


WALKED = [(model, name) for model, name, target in _walk_forms() if _label(target) not in access.SHARED]
FORM_FIELDS = [(model, name) for model, name in WALKED if _lead_may_set(model, name)]
FIXED_FIELDS = [(model, name) for model, name in WALKED if not _lead_may_set(model, name)]
ADD_FIELDS = [  # a new record a lead may add (an API token) names its teams on the add form only
    (model, name)
    for model, name in WALKED
    if admin.site._registry[_model(model)].may_add == LEADS
    and name not in admin.site._registry[_model(model)].lead_readonly_fields
]
INLINE_FIELDS = [
    (model, inline, name)
    for model, inline, name, target, editable in _walk_inlines()
    if _label(target) not in access.SHARED and editable
]
READ_ONLY_INLINES = sorted(
    {(_label(m), i.__name__) for m, a in admin.site._registry.items() for i in a.inlines if not i.editable}
)
SUPERUSER_ONLY = [_label(m) for m, a in admin.site._registry.items() if not isinstance(a, TeamScopedAdmin)]


def test_the_walk_covers_the_admin():
    """The generated cases are not empty, and the only related models left out are the deliberately shared ones."""
    assert len(WALKED) >= 40
    assert len(FORM_FIELDS) >= 10  # what a lead steers
    assert len(FIXED_FIELDS) >= 35  # facts and records: nothing to point anywhere
    assert len(INLINE_FIELDS) >= 4
    assert len(READ_ONLY_INLINES) >= 4
    left_out = {_label(t) for *_, t in _walk_forms() if _label(t) in access.SHARED}
    left_out |= {_label(t) for *_, t, _ in _walk_inlines() if _label(t) in access.SHARED}
    assert left_out == {"reviews.Connection"}
    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, TeamScopedAdmin):
            assert _label(model) in access.TEAM_PATHS, f"{model} has no team path in reviews.access"
        for inline in model_admin.inlines:
            assert issubclass(inline, ScopedInline), f"{inline} is not scoped"


# --- posting what the page shows ----------------------------------------------------------------------------------


def _url(model: type[Model], view: str, obj: Model | None = None) -> str:
    base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    return f"{base}add/" if view == "add" else f"{base}{obj.pk}/change/"  # type: ignore[union-attr]


def _snapshot(obj: Model) -> dict[str, Any]:
    obj.refresh_from_db()
    values = {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}
    for field in obj._meta.many_to_many:
        values[field.name] = sorted(getattr(obj, field.name).values_list("pk", flat=True))
    return values


def _field_errors(response: Any, name: str) -> list[str]:
    form = response.context["adminform"].form
    return [str(e) for e in form.errors.get(name, [])]


def _all_errors(response: Any) -> Any:
    if response.context is None:
        return response.status_code
    inlines = [f.formset.errors for f in response.context.get("inline_admin_formsets", [])]
    return response.context["adminform"].form.errors, inlines


# Append-only records (issue 13): their change forms refuse any save, so no field of theirs can be repointed.
APPEND_ONLY = {"reviews.Override", "reviews.PolicyViolation"}


# --- the generated cases ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "name"), FORM_FIELDS, ids=[f"{m}.{n}" for m, n in FORM_FIELDS])
def test_a_lead_cannot_change_a_field_to_point_at_another_teams_row(client, world, label, name):
    model = _model(label)
    field = model._meta.get_field(name)
    ours, theirs = world.shop[label], world.search[_label(field.related_model)]
    client.force_login(world.lead)
    data = page_data(client.get(_url(model, "change", ours)), model)
    assert name in data, f"{name} is not on the change form of {label}"
    resaved = client.post(_url(model, "change", ours), data)
    if label in APPEND_ONLY:
        # A record of an exception is never changed in place by anyone: that is the boundary, and a stronger one.
        before = _snapshot(ours)
        data[name] = [*data[name], str(theirs.pk)] if field.many_to_many else [str(theirs.pk)]
        assert client.post(_url(model, "change", ours), data).status_code in {403, 200}
        ours.refresh_from_db()
        assert _snapshot(ours) == before
        return
    assert resaved.status_code == 302, _all_errors(resaved)
    before = _snapshot(ours)

    data[name] = [*data[name], str(theirs.pk)] if field.many_to_many else [str(theirs.pk)]
    response = client.post(_url(model, "change", ours), data)

    assert response.status_code == 200
    assert any(REFUSED in error for error in _field_errors(response, name)), _field_errors(response, name)
    assert _snapshot(ours) == before


@pytest.mark.parametrize(("label", "name"), ADD_FIELDS, ids=[f"{m}.{n}" for m, n in ADD_FIELDS])
def test_a_lead_cannot_add_a_row_pointing_at_another_teams_row(client, world, label, name):
    model = _model(label)
    field = model._meta.get_field(name)
    ours, theirs = world.shop[label], world.search[_label(field.related_model)]
    client.force_login(world.lead)
    add_page = client.get(_url(model, "add"))
    if not admin.site._registry[model].has_add_permission(add_page.wsgi_request):
        assert add_page.status_code == 403  # a team: a superuser's to add
        return
    data = page_data(add_page, model)
    # The fields of our own row, as its change page shows them: everything valid but the one under test.
    shown = page_data(client.get(_url(model, "change", ours)), model)
    data.update({key: values for key, values in shown.items() if "-" not in key})
    count = model._default_manager.count()

    data[name] = [str(theirs.pk)]
    response = client.post(_url(model, "add"), data)

    assert response.status_code == 200
    assert any(REFUSED in error for error in _field_errors(response, name)), _field_errors(response, name)
    assert model._default_manager.count() == count


@pytest.mark.parametrize(("label", "inline", "name"), INLINE_FIELDS, ids=[f"{m}.{i}.{n}" for m, i, n in INLINE_FIELDS])
def test_a_lead_cannot_add_an_inline_row_pointing_at_another_teams_row(client, world, label, inline, name):
    model = _model(label)
    page = client
    client.force_login(world.lead)
    response = page.get(_url(model, "change", world.shop[label]))
    [formset] = [f.formset for f in response.context["inline_admin_formsets"] if type(f.opts).__name__ == inline]
    inline_model = formset.model
    theirs = world.search[_label(inline_model._meta.get_field(name).related_model)]
    data = page_data(response, model)
    prefix, index = formset.prefix, int(data[f"{formset.prefix}-TOTAL_FORMS"][0])
    parser = FormFields(f"{model._meta.model_name}_form")
    parser.feed(response.content.decode())
    for key, values in parser.data.items():  # the empty row the page offers, as "Add another" fills it in
        if key.startswith(f"{prefix}-__prefix__-"):
            data[key.replace("__prefix__", str(index))] = values
    data[f"{prefix}-TOTAL_FORMS"] = [str(index + 1)]
    data[f"{prefix}-{index}-{name}"] = [str(theirs.pk)]
    count = inline_model._default_manager.count()

    refused = page.post(_url(model, "change", world.shop[label]), data)

    assert refused.status_code == 200
    [bound] = [f.formset for f in refused.context["inline_admin_formsets"] if type(f.opts).__name__ == inline]
    errors = [str(e) for e in bound.forms[index].errors.get(name, [])]
    assert any(REFUSED in error for error in errors), bound.errors
    assert inline_model._default_manager.count() == count


@pytest.mark.parametrize(("label", "name"), FIXED_FIELDS, ids=[f"{m}.{n}" for m, n in FIXED_FIELDS])
def test_a_field_a_lead_may_not_set_is_on_no_form_and_a_post_changes_nothing(client, world, label, name):
    model = _model(label)
    field = model._meta.get_field(name)
    ours, theirs = world.shop[label], world.search[_label(field.related_model)]
    model_admin = admin.site._registry[model]
    client.force_login(world.lead)
    page = client.get(_url(model, "change", ours))
    data = page_data(page, model)
    assert name not in data, f"{label}.{name} is offered to a lead"
    before = _snapshot(ours)

    data[name] = [str(theirs.pk)]
    response = client.post(_url(model, "change", ours), data)

    assert response.status_code == (302 if model_admin.may_change == LEADS else 403)
    assert _snapshot(ours) == before
    add_page = client.get(_url(model, "add"))
    if (label, name) in ADD_FIELDS:
        return  # the add form offers it: test_a_lead_cannot_add_a_row_pointing_at_another_teams_row
    if model_admin.may_add == LEADS:
        assert name not in page_data(add_page, model)
    else:
        assert add_page.status_code == 403
        count = model._default_manager.count()
        assert client.post(_url(model, "add"), {name: [str(theirs.pk)]}).status_code == 403
        assert model._default_manager.count() == count


@pytest.mark.parametrize(("label", "inline"), READ_ONLY_INLINES, ids=[f"{m}.{i}" for m, i in READ_ONLY_INLINES])
@pytest.mark.parametrize("actor", ["lead", "root"])
def test_a_read_only_inline_offers_no_row_to_add_or_delete(client, world, label, inline, actor):
    model = _model(label)
    client.force_login(world.lead if actor == "lead" else world.root)
    page = client.get(_url(model, "change", world.shop[label]))
    [formset] = [f for f in page.context["inline_admin_formsets"] if type(f.opts).__name__ == inline]
    assert not formset.has_add_permission
    assert not formset.has_change_permission
    assert not formset.has_delete_permission
    assert f"{formset.formset.prefix}-__prefix__" not in page.content.decode()  # no "Add another" row


@pytest.mark.parametrize("label", SUPERUSER_ONLY)
def test_a_lead_cannot_open_or_add_instance_wide_rows(client, world, label):
    model = _model(label)
    client.force_login(world.lead)
    assert client.get(_url(model, "add")).status_code == 403
    count = model._default_manager.count()
    assert client.post(_url(model, "add"), {"name": "x", "username": "x"}).status_code == 403
    assert model._default_manager.count() == count


AUTOCOMPLETE = [
    (label, name) for label, name in WALKED if name in admin.site._registry[_model(label)].autocomplete_fields
]


@pytest.mark.parametrize(("label", "name"), AUTOCOMPLETE, ids=[f"{m}.{n}" for m, n in AUTOCOMPLETE])
def test_autocomplete_lists_no_other_teams_rows(client, world, label, name):
    model = _model(label)
    target = model._meta.get_field(name).related_model
    client.force_login(world.lead)
    response = client.get(
        "/admin/autocomplete/",
        {"app_label": model._meta.app_label, "model_name": model._meta.model_name, "field_name": name, "term": ""},
    )
    if response.status_code == 403:  # the target's admin is not the lead's at all
        return
    assert response.status_code == 200
    listed = {item["id"] for item in response.json()["results"]}
    assert str(world.search[_label(target)].pk) not in listed


# --- the actors, and the rules no generated case shows ------------------------------------------------------------


def test_a_superuser_may_point_a_row_at_any_team(client, world):
    repository = world.shop["reviews.Repository"]
    client.force_login(world.root)
    data = page_data(client.get(_url(type(repository), "change", repository)), type(repository))
    data["team"] = [str(world.search["team"].pk)]
    assert client.post(_url(type(repository), "change", repository), data).status_code == 302
    repository.refresh_from_db()
    assert repository.team == world.search["team"]


def test_a_lead_of_another_team_cannot_open_ours_and_a_member_cannot_get_in(client, world):
    review = world.shop["reviews.Review"]
    client.force_login(world.search["lead_user"])
    assert client.get(_url(type(review), "change", review)).status_code == 302  # "doesn't exist"
    client.force_login(world.shop["member_user"])
    assert client.get(_url(type(review), "change", review)).status_code == 302  # to the login page


def test_a_lead_may_point_at_a_shared_connection(client, world):
    repository = world.shop["reviews.Repository"]
    other = Connection.objects.create(provider="gitlab", name="GitLab", base_url="https://gitlab.example.com")
    client.force_login(world.lead)
    data = page_data(client.get(_url(type(repository), "change", repository)), type(repository))
    data["connection"] = [str(other.pk)]
    assert client.post(_url(type(repository), "change", repository), data).status_code == 302
    repository.refresh_from_db()
    assert repository.connection == other


def test_a_row_that_would_belong_to_none_of_the_leads_teams_is_refused(client, world):
    repository = world.shop["reviews.Repository"]
    client.force_login(world.lead)
    data = page_data(client.get(_url(type(repository), "change", repository)), type(repository))
    data.update({"team": [""], "external_id": ["orphan"], "full_path": ["acme/orphan"]})
    assert client.post(_url(type(repository), "add"), data).status_code == 403
    assert not type(repository).objects.filter(full_path="acme/orphan").exists()


def test_a_lead_keeps_another_teams_links_they_cannot_see(rf, world):
    """No many-to-many field a lead may change is left on a change form today (incidents and tokens became
    read-only); the rule that keeps the links a lead cannot see still holds for the next one."""
    from types import SimpleNamespace

    from reviews.admin_scoping import _keep_links_outside, admin_access

    incident = world.shop["telemetry.Incident"]
    incident.services.add(world.search["telemetry.Service"])
    request = rf.post("/admin/")
    request.user = world.lead
    form = SimpleNamespace(instance=incident, cleaned_data={"services": [world.shop["telemetry.Service"]]})
    _keep_links_outside(form, admin_access(request))
    assert set(form.cleaned_data["services"]) == {world.shop["telemetry.Service"], world.search["telemetry.Service"]}


def test_a_lead_sees_unresolved_identities_and_attaches_one_to_their_person(client, world):
    unresolved = Identity.objects.create(kind="email", value="someone@example.com")
    client.force_login(world.lead)
    data = page_data(client.get(_url(Identity, "change", unresolved)), Identity)
    data["person"] = [str(world.shop["reviews.Person"].pk)]
    assert client.post(_url(Identity, "change", unresolved), data).status_code == 302
    unresolved.refresh_from_db()
    assert unresolved.person == world.shop["reviews.Person"]


def test_a_form_field_the_admin_did_not_scope_is_still_checked(rf, world):
    """A custom form field with its own queryset bypasses the scoped choices; the form's clean still refuses."""
    from django import forms

    from reviews.admin_scoping import _scope_checked, admin_access
    from reviews.models import Repository

    class Loose(forms.ModelForm):
        repository = forms.ModelChoiceField(queryset=Repository.objects.all())

        class Meta:
            model = RiskSignal
            fields = ["repository", "reference", "occurred_at"]

    request = rf.get("/admin/")
    request.user = world.lead
    form_class = _scope_checked(Loose, admin_access(request))
    theirs = world.search["reviews.Repository"]
    form = form_class({"repository": theirs.pk, "reference": "x", "occurred_at": timezone.now()})
    assert not form.is_valid()
    assert any(REFUSED in e for e in form.errors["repository"])


def test_saving_refuses_another_teams_row_even_past_the_form(rf, world):
    """The last line: save_form refuses a cleaned value outside the lead's teams, whatever let it through."""
    from types import SimpleNamespace

    from django.core.exceptions import PermissionDenied

    from reviews.models import Review

    request = rf.post("/admin/")
    request.user = world.lead
    model_admin = admin.site._registry[Review]
    form = SimpleNamespace(cleaned_data={"pull_request": world.search["reviews.PullRequest"]})
    with pytest.raises(PermissionDenied):
        model_admin.save_form(request, form, change=False)


def test_leads_do_not_create_teams(client, world):
    client.force_login(world.lead)
    assert client.get("/admin/reviews/team/add/").status_code == 403
    assert client.post("/admin/reviews/team/add/", {"name": "New", "slug": "new"}).status_code == 403
    assert not Team.objects.filter(slug="new").exists()


def test_a_leads_list_filters_name_no_other_teams_rows(client, world):
    client.force_login(world.lead)
    page = client.get("/admin/reviews/pullrequest/").content.decode()
    assert "acme/shop" in page
    assert "acme/search" not in page  # the repository filter offers only the repositories of what the lead sees


def _shared_session(world: World) -> Any:
    """A pairing session a person of shop and a person of search only took part in, both still there."""
    from reviews.models import PairingParticipant, PairingSession

    start = timezone.now() - timezone.timedelta(hours=2)
    session = PairingSession.objects.create(source="manual", branch="feature", started_at=start)
    for person in (world.shop["reviews.Person"], world.search["member_user"].person):
        PairingParticipant.objects.create(session=session, person=person, joined_at=start)
    return session


def test_a_lead_cannot_change_a_pairing_session_another_teams_person_took_part_in(client, world):
    """The session lies within both teams. Its span is the other team's person's pairing too (pairing can count
    as review of their pull requests), so, as the API refuses (`Not in your teams`), the admin does too."""
    from reviews.models import PairingSession

    session = _shared_session(world)
    before = _snapshot(session)
    client.force_login(world.lead)
    url = _url(PairingSession, "change", session)
    data = page_data(client.get(url), PairingSession)
    data["started_at_0"] = [(session.started_at - timezone.timedelta(days=30)).date().isoformat()]
    response = client.post(url, data)
    assert response.status_code in {403, 200}
    assert _snapshot(session) == before


def test_a_lead_cannot_delete_a_pairing_session_another_teams_person_took_part_in(client, world):
    from reviews.models import PairingParticipant, PairingSession

    session = _shared_session(world)
    client.force_login(world.lead)
    client.post(f"/admin/reviews/pairingsession/{session.pk}/delete/", {"post": "yes"})
    client.post(
        "/admin/reviews/pairingsession/",
        {"action": "delete_selected", "_selected_action": [str(session.pk)], "post": "yes"},
    )
    assert PairingSession.objects.filter(pk=session.pk).exists()
    assert PairingParticipant.objects.filter(session=session).count() == 2
