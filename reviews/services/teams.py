"""Teams, memberships and VCS connections."""

from __future__ import annotations

from reviews.models import Connection, Membership, Person, Team


def team_upsert(*, slug: str, name: str, review_within_hours: int = 24, max_pr_size: int = 400) -> Team:
    team, _ = Team.objects.update_or_create(
        slug=slug, defaults={"name": name, "review_within_hours": review_within_hours, "max_pr_size": max_pr_size}
    )
    return team


def membership_set(*, team: Team, person: Person, role: str = Membership.Role.MEMBER) -> Membership:
    membership, _ = Membership.objects.update_or_create(team=team, person=person, defaults={"role": role})
    return membership


def connection_upsert(*, provider: str, name: str, base_url: str, web_url: str = "", api_token: str = "") -> Connection:
    connection, _ = Connection.objects.update_or_create(
        provider=provider, base_url=base_url, defaults={"name": name, "web_url": web_url, "api_token": api_token}
    )
    return connection
