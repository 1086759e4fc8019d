"""Access control, in one file: which teams a caller may see and lead, and which rows lie within those teams.

The admin, the HTML pages and both APIs (reviews and telemetry) ask this module; none decides on its own.

Callers
- A superuser sees and leads every team.
- A person (a signed-in user linked to a Person) sees the teams they belong to and leads those where their
  membership is LEAD. In the admin only staff users lead anything: a lead who is not staff leads nothing there.
- An API token sees and acts for (leads) exactly its teams, never more, whoever created it.
- Anyone else (anonymous, a user with no person) sees and leads nothing.
- Notices are personal: only the person they address reads them (`own_person`), whatever else the caller sees.

Rows
`TEAM_PATHS` names, for every model a caller can reach, the lookups from it to `Team`; a row lies within a set
of teams when any of its paths reaches one of them. Rules for rows no team owns, decided here:
- `Connection` (a VCS instance) is `SHARED`: only superusers list or change connections, and any lead may point a
  row at one (a repository or an identity names the instance it lives on; a connection holds no team's data).
- An `Identity` with no person (unresolved) is `UNCLAIMED`: every lead sees it, to attach it to a person of theirs.
- A `Person` with no membership belongs to no team. A lead brings a NEW person into a team of theirs in the form
  that creates them (the admin refuses the save unless the person ends up within the lead's teams); an existing
  person outside the lead's teams, of another team or of none, only a superuser brings in (fail closed).
- `auth.User` lies within a team through its person; a lead cannot link a login that is not already one of theirs.
- A `Repository` no team owns yet may be named by any caller in what it records (a pairing session on it), though
  it lies within nobody's teams (`repositories_to_name`).
- Every other model (webhook deliveries, groups, permissions) is for superusers only: not in `TEAM_PATHS`, it is
  within nobody's teams.

Scrapers
- `GET /metrics` (Prometheus) answers a caller that passes every configured check: METRICS_TOKEN as a bearer token,
  and a client address within METRICS_ALLOWED_NETWORKS. With neither configured, only the embedded default (DEBUG
  on) answers; production refuses, saying what to set (`metrics_scrape_refusal`).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Model, Q, QuerySet

from reviews.authentication import TokenUser
from reviews.models import Membership, PairingParticipant, Person, Repository, Team

# model label -> lookups from the model to Team. Labels, not classes: reviews never imports telemetry.
TEAM_PATHS: dict[str, tuple[str, ...]] = {
    "reviews.Team": ("pk",),
    "reviews.Membership": ("team",),
    "reviews.Person": ("memberships__team",),
    "reviews.Identity": ("person__memberships__team",),
    "reviews.Repository": ("team",),
    "reviews.SyncRun": ("repository__team",),
    "reviews.PullRequest": ("repository__team",),
    "reviews.ChangedFile": ("pull_request__repository__team",),
    "reviews.ReviewerSuggestion": ("pull_request__repository__team",),
    "reviews.Commit": ("repository__team",),
    "reviews.Review": ("pull_request__repository__team",),
    "reviews.Comment": ("pull_request__repository__team",),
    "reviews.CommitStatus": ("repository__team",),
    "reviews.Policy": ("team", "repository__team"),
    "reviews.PolicyEvaluation": ("pull_request__repository__team",),
    "reviews.Override": ("pull_request__repository__team",),
    "reviews.PolicyViolation": ("pull_request__repository__team",),
    "reviews.RiskSignal": ("repository__team",),
    "reviews.PairingSession": ("participations__person__memberships__team", "repository__team"),
    "reviews.PairingParticipant": ("person__memberships__team",),
    "reviews.ApiToken": ("teams",),
    "reviews.PolicyVersion": ("policy__team", "policy__repository__team"),
    "reviews.OverrideWithdrawal": ("override__pull_request__repository__team",),
    "reviews.FollowUpReview": ("override__pull_request__repository__team",),
    "reviews.AuditEvent": ("team",),
    "auth.User": ("person__memberships__team",),
    "telemetry.Service": ("team",),
    "telemetry.ServiceRepository": ("service__team",),
    "telemetry.Deployment": ("service__team",),
    "telemetry.DeploymentChange": ("deployment__service__team",),
    "telemetry.Incident": ("services__team",),
    "telemetry.SuspectChange": ("incident__services__team", "deployment__service__team"),
    "telemetry.SuspectVerdict": ("suspect__incident__services__team", "suspect__deployment__service__team"),
    "telemetry.Notification": ("person__memberships__team",),
    "telemetry.AlertSettings": ("team",),
    "telemetry.TeamAlert": ("team",),
    "telemetry.WeeklyDigest": ("team",),
    "telemetry.DeployCheck": ("service__team",),
}

# Rows every lead may point at, though no team owns them.
SHARED: frozenset[str] = frozenset({"reviews.Connection"})

# Rows no team owns yet, which every lead sees so as to claim them for a team of theirs.
UNCLAIMED: dict[str, Q] = {"reviews.Identity": Q(person__isnull=True)}

TeamIds = frozenset[int] | None  # None: every team


@dataclass(frozen=True)
class Access:
    """What one caller may reach. `None` means every team (a superuser)."""

    seen: TeamIds
    led: TeamIds

    @property
    def is_everything(self) -> bool:
        return self.led is None

    def leads(self, team_id: int | None) -> bool:
        return self.led is None or team_id in self.led


_Row = TypeVar("_Row", bound=Model)


NOBODY = Access(seen=frozenset(), led=frozenset())
EVERYTHING = Access(seen=None, led=None)


def access_of(user: Any, *, admin: bool = False) -> Access:
    """The access of a request's user: a `User`, an anonymous user, or the `TokenUser` of an API token."""
    if isinstance(user, TokenUser):
        if admin:
            return NOBODY
        teams = frozenset(user.token.teams.values_list("pk", flat=True))
        return Access(seen=teams, led=teams)
    if not getattr(user, "is_authenticated", False):
        return NOBODY
    if user.is_superuser:
        return EVERYTHING
    person = getattr(user, "person", None)
    if person is None or (admin and not user.is_staff):
        return NOBODY
    return person_access(person)


def person_access(person: Person) -> Access:
    """What a person's memberships give: every team they belong to seen, the LEAD ones led."""
    roles = list(Membership.objects.filter(person=person).values_list("team_id", "role"))
    return Access(
        seen=frozenset(team for team, _ in roles),
        led=frozenset(team for team, role in roles if role == Membership.Role.LEAD),
    )


def request_access(request: Any, *, admin: bool = False) -> Access:
    """`access_of(request.user)`, computed once per request and user."""
    key = "_tandem_admin_access" if admin else "_tandem_access"
    cached = getattr(request, key, None)
    if cached is not None and cached[0] is request.user:
        return cached[1]  # type: ignore[no-any-return]
    access = access_of(request.user, admin=admin)
    setattr(request, key, (request.user, access))
    return access


def own_person(user: Any) -> Person | None:
    """Whose own records (notices) a caller reads: a signed-in user's person. An API token acts for teams, never
    for a person, and a superuser reads only their own: nobody reads another person's notices."""
    if isinstance(user, TokenUser) or not getattr(user, "is_authenticated", False):
        return None
    return getattr(user, "person", None)


def visible_team_ids(request: Any) -> TeamIds:
    return request_access(request).seen


def visible_teams(request: Any) -> QuerySet[Team]:
    return teams_of(request_access(request).seen)


def teams_of(team_ids: Collection[int] | None) -> QuerySet[Team]:
    return Team.objects.all() if team_ids is None else Team.objects.filter(pk__in=team_ids)


# --- rows ----------------------------------------------------------------------------------------------------------


def _label(model: type[Model]) -> str:
    return model._meta.label


def _within_condition(model: type[Model], team_ids: Collection[int]) -> Q | None:
    """The condition of a row of `model` lying within the teams; None when the model has no team path."""
    paths = TEAM_PATHS.get(_label(model))
    if paths is None:
        return None
    condition = Q()
    for path in paths:
        condition |= Q(**{f"{path}__in": list(team_ids)})
    return condition


def rows_within(queryset: QuerySet[_Row], team_ids: Collection[int] | None) -> QuerySet[_Row]:
    """The rows of `queryset` within the teams (None: every row). A model without a team path yields none."""
    if team_ids is None:
        return queryset
    model = queryset.model
    condition = _within_condition(model, team_ids)
    if condition is None or not team_ids:
        return queryset.none()
    # A subquery rather than a join with distinct(): the result composes with ordering and aggregates.
    return queryset.filter(pk__in=model._default_manager.filter(condition).values("pk"))


def lies_within(row: Model, team_ids: Collection[int] | None) -> bool:
    """Whether this row lies within the teams (None: every row does)."""
    return team_ids is None or rows_within(type(row)._default_manager.filter(pk=row.pk), team_ids).exists()


def outside_teams(model: type[Model], pks: Iterable[Any], team_ids: Collection[int] | None) -> set[Any]:
    """Which of these primary keys of `model` do not lie within the teams (None: none of them)."""
    wanted = {pk for pk in pks if pk is not None}
    if not wanted or team_ids is None:
        return set()
    inside = rows_within(model._default_manager.filter(pk__in=wanted), team_ids)
    return wanted - set(inside.values_list("pk", flat=True))


def repositories_to_name(team_ids: Collection[int] | None) -> QuerySet[Repository]:
    """The repositories a caller acting for these teams may name: its teams', and those no team owns yet."""
    if team_ids is None:
        return Repository.objects.all()
    return Repository.objects.filter(Q(team__isnull=True) | Q(team_id__in=list(team_ids)))


def rows_a_lead_reaches(queryset: QuerySet[Any], access: Access) -> QuerySet[Any]:
    """The rows a lead works on in the admin: their teams' rows, and the unclaimed ones every lead may claim."""
    if access.led is None:
        return queryset
    label = _label(queryset.model)
    condition = _within_condition(queryset.model, access.led) if access.led else None
    unclaimed = UNCLAIMED.get(label)
    if unclaimed is not None:
        condition = unclaimed if condition is None else condition | unclaimed
    if condition is None:
        return queryset.none()
    return queryset.filter(pk__in=queryset.model._default_manager.filter(condition).values("pk"))


def rows_a_lead_may_point_at(queryset: QuerySet[Any], access: Access) -> QuerySet[Any]:
    """The rows a lead may name in a foreign key or many-to-many field: what they reach, and the shared rows."""
    if access.led is None or _label(queryset.model) in SHARED:
        return queryset
    return rows_a_lead_reaches(queryset, access)


def outside(model: type[Model], pks: Iterable[Any], access: Access) -> set[Any]:
    """Which of these primary keys of `model` a lead may not point at."""
    wanted = {pk for pk in pks if pk is not None}
    if not wanted or access.led is None:
        return set()
    allowed = rows_a_lead_may_point_at(model._default_manager.filter(pk__in=wanted), access)
    return wanted - set(allowed.values_list("pk", flat=True))


def pairing_people_beyond(session_id: int, access: Access) -> set[int]:
    """The people of a pairing session (present or not) a lead does not lead. A session lies within the team of
    any of its people, but its span is each one's pairing record, and pairing can count as review of their pull
    requests: only a caller leading every participant's team changes or deletes it, in the admin as in the API
    (`reviews.services.pairing` refuses the same session with "Not in your teams")."""
    people = PairingParticipant.objects.filter(session_id=session_id).values_list("person_id", flat=True)
    return outside(Person, people, access)


@dataclass(frozen=True)
class ScrapeRefusal:
    status: int  # 401: a token is wanted; 403: this caller or this configuration is refused
    reason: str


def metrics_scrape_refusal(request: Any) -> ScrapeRefusal | None:
    """Why this request may not read the server's metrics, or None when it may (see the module's docstring)."""
    token: str = settings.METRICS_TOKEN
    networks: list[str] = settings.METRICS_ALLOWED_NETWORKS
    if not token and not networks:
        if settings.DEBUG:
            return None
        return ScrapeRefusal(
            403, "Metrics are refused until METRICS_TOKEN or METRICS_ALLOWED_NETWORKS is set on the server."
        )
    if networks and not _address_within(request.META.get("REMOTE_ADDR", ""), networks):
        return ScrapeRefusal(403, "This address may not read metrics (METRICS_ALLOWED_NETWORKS).")
    if token:
        authorization = request.headers.get("Authorization", "")
        scheme, _, offered = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(offered.strip().encode(), token.encode()):
            return ScrapeRefusal(401, "Metrics need the bearer token (Authorization: Bearer <METRICS_TOKEN>).")
    return None


def _address_within(address: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # no address, or not one: fail closed
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)
