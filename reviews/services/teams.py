"""Teams, memberships and VCS connections."""

from __future__ import annotations

from reviews.models import Connection, Membership, Person, Team
from reviews.selectors.affected import open_pull_requests_involving
from reviews.services.enqueue import pull_request_evaluations_enqueue


def team_upsert(*, slug: str, name: str, review_within_hours: int = 24, max_pr_size: int = 400) -> Team:
    team, _ = Team.objects.update_or_create(
        slug=slug, defaults={"name": name, "review_within_hours": review_within_hours, "max_pr_size": max_pr_size}
    )
    return team


def membership_set(*, team: Team, person: Person, role: str = Membership.Role.MEMBER) -> Membership:
    membership, _ = Membership.objects.update_or_create(team=team, person=person, defaults={"role": role})
    # Rules name teams (`teams:`, `author_in_teams:`): the person's open pull requests may be judged otherwise now.
    pull_request_evaluations_enqueue(pull_request_ids=open_pull_requests_involving(person_id=person.pk))
    return membership


def membership_end(*, team: Team, person: Person) -> int:
    deleted, _ = Membership.objects.filter(team=team, person=person).delete()
    if deleted:
        pull_request_evaluations_enqueue(pull_request_ids=open_pull_requests_involving(person_id=person.pk))
    return deleted


def connection_upsert(*, provider: str, name: str, base_url: str, web_url: str = "", api_token: str = "") -> Connection:
    connection, _ = Connection.objects.update_or_create(
        provider=provider, base_url=base_url, defaults={"name": name, "web_url": web_url, "api_token": api_token}
    )
    return connection
