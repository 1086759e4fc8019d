"""Sessions inferred from `Co-authored-by:` trailers, and the pairing partners of a pull request."""

from __future__ import annotations

import datetime as dt

import pytest

from reviews.integrations.records import CommitRecord, GitUserRecord
from reviews.integrations.trailers import co_authors
from reviews.models import Commit, Identity, PairingParticipant, PairingSession, Person
from reviews.selectors.pairing import pairing_partners_for_pull_request
from reviews.services.pairing import (
    pairing_participant_add,
    pairing_participant_remove,
    pairing_session_end,
    pairing_session_record,
    pairing_session_start,
    pairing_sessions_infer,
    pairing_sessions_infer_for_identity,
)
from reviews.services.pull_requests import commit_upsert, pull_request_commits_add
from tests.factories import (
    CommitFactory,
    IdentityFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
)

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC)  # a Monday morning
CO_AUTHOR = PairingSession.Source.CO_AUTHOR


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


class People:
    """Ann, Bo and Cy, each with a git e-mail identity."""

    def __init__(self) -> None:
        self.email: dict[str, Identity] = {}
        for name in ("ann", "bo", "cy"):
            person = PersonFactory(display_name=name.title())
            setattr(self, name, person)
            self.email[name] = IdentityFactory(
                person=person, kind=Identity.Kind.EMAIL, connection=None, value=f"{name}@example.com"
            )

    def commit(self, repository, hours: float, author: str, *with_: str, sha: str | None = None) -> Commit:
        commit = CommitFactory(
            repository=repository,
            authored_at=at(hours),
            author=getattr(self, author),
            author_identity=self.email[author],
            **({"sha": sha} if sha else {}),
        )
        commit.co_authors.set([self.email[name] for name in with_])
        return commit


@pytest.fixture
def people() -> People:
    return People()


@pytest.fixture
def repository():
    return RepositoryFactory()


def _sessions() -> list[PairingSession]:
    return list(PairingSession.objects.filter(source=CO_AUTHOR).order_by("started_at"))


def _people_of(session: PairingSession) -> set[Person]:
    return {p.person for p in session.participations.select_related("person")}


def _spans() -> list[tuple[dt.datetime, dt.datetime | None, str]]:
    return [(s.started_at, s.ended_at, s.external_id) for s in _sessions()]


# Inference -------------------------------------------------------------------------------------------------------


def test_a_commit_by_a_with_co_author_b_records_a_half_hour_session_ending_at_the_commit(people, repository):
    commit = people.commit(repository, 0, "ann", "bo")
    [session] = pairing_sessions_infer(repository=repository, commits=[commit])
    assert session.source == CO_AUTHOR
    assert session.repository == repository
    assert (session.started_at, session.ended_at) == (at(-0.5), at(0))
    roles = {p.person: p.role for p in session.participations.all()}
    assert roles == {people.ann: "driver", people.bo: "navigator"}
    assert all((p.joined_at, p.left_at) == (at(-0.5), at(0)) for p in session.participations.all())


def test_commits_close_in_time_make_one_session_and_a_long_pause_starts_another(people, repository):
    commits = [
        people.commit(repository, 0, "ann", "bo"),
        people.commit(repository, 1, "bo", "ann"),  # the same pair, other way round
        people.commit(repository, 3.5, "ann", "bo"),
        people.commit(repository, 7, "ann", "bo"),  # 3.5 hours later: another session
    ]
    pairing_sessions_infer(repository=repository, commits=commits)
    assert [(s.started_at, s.ended_at) for s in _sessions()] == [(at(0), at(3.5)), (at(6.5), at(7))]


def test_running_inference_twice_creates_nothing_new(people, repository, django_assert_max_num_queries):
    commits = [people.commit(repository, h, "ann", "bo") for h in (0, 1, 5)]
    first = pairing_sessions_infer(repository=repository, commits=commits)
    before = _spans()
    with django_assert_max_num_queries(9):  # a savepoint, seven reads, no writes
        again = pairing_sessions_infer(repository=repository, commits=commits)
    assert [s.pk for s in again] == [s.pk for s in first]
    assert _spans() == before
    assert PairingParticipant.objects.count() == 4


def test_commits_seen_one_by_one_in_any_order_end_up_as_one_run_would_record_them(people, repository):
    commits = [people.commit(repository, h, "ann", "bo") for h in (2, 0, 4.5, 1, 9)]
    for commit in commits:
        pairing_sessions_infer(repository=repository, commits=[commit])
    one_by_one = _spans()
    PairingSession.objects.all().delete()
    pairing_sessions_infer(repository=repository, commits=commits)
    assert _spans() == one_by_one
    assert [(start, end) for start, end, _ in one_by_one] == [(at(0), at(4.5)), (at(8.5), at(9))]


def test_a_commit_that_bridges_two_sessions_merges_them(people, repository):
    pairing_sessions_infer(
        repository=repository,
        commits=[people.commit(repository, 0, "ann", "bo"), people.commit(repository, 5, "ann", "bo")],
    )
    assert len(_sessions()) == 2
    pairing_sessions_infer(repository=repository, commits=[people.commit(repository, 2.5, "bo", "ann")])
    assert [(s.started_at, s.ended_at) for s in _sessions()] == [(at(0), at(5))]


def test_each_group_of_people_gets_its_own_sessions_and_a_mob_is_one_session(people, repository):
    commits = [
        people.commit(repository, 0, "ann", "bo"),
        people.commit(repository, 0.5, "cy", "bo"),
        people.commit(repository, 1, "ann", "bo", "cy"),
    ]
    pairing_sessions_infer(repository=repository, commits=commits)
    groups = sorted((sorted(p.display_name for p in _people_of(s)) for s in _sessions()), key=len)
    assert groups == [["Ann", "Bo"], ["Bo", "Cy"], ["Ann", "Bo", "Cy"]]


def test_unresolved_co_authors_make_no_session_until_a_lead_attaches_them(people, repository):
    stranger = IdentityFactory(person=None, kind=Identity.Kind.EMAIL, connection=None, value="dee@example.com")
    commit = people.commit(repository, 0, "ann")
    commit.co_authors.set([stranger])
    assert pairing_sessions_infer(repository=repository, commits=[commit]) == []
    assert _sessions() == []

    dee = PersonFactory(display_name="Dee")
    Identity.objects.filter(pk=stranger.pk).update(person=dee)
    [session] = pairing_sessions_infer_for_identity(identity_id=stranger.pk)
    assert _people_of(session) == {people.ann, dee}


def test_an_author_known_only_through_a_later_attached_identity_counts(people, repository):
    commit = people.commit(repository, 0, "ann", "bo")
    Commit.objects.filter(pk=commit.pk).update(author=None)  # stored before the e-mail was attached
    [session] = pairing_sessions_infer(repository=repository, commits=[commit])
    assert _people_of(session) == {people.ann, people.bo}


def test_commits_without_co_authors_cost_one_query(people, repository, django_assert_num_queries):
    commits = [people.commit(repository, h, "ann") for h in range(20)]
    with django_assert_num_queries(1):
        assert pairing_sessions_infer(repository=repository, commits=commits) == []


def test_bots_and_co_authoring_yourself_are_not_pairing(people, repository):
    copilot = PersonFactory(display_name="Copilot", is_bot=True)
    bot_email = IdentityFactory(person=copilot, kind=Identity.Kind.EMAIL, connection=None, value="copilot@github.com")
    other_ann = IdentityFactory(person=people.ann, kind=Identity.Kind.EMAIL, connection=None, value="ann@home.example")
    commit = people.commit(repository, 0, "ann")
    commit.co_authors.set([bot_email, other_ann])
    assert pairing_sessions_infer(repository=repository, commits=[commit]) == []
    assert _sessions() == []


def test_an_overlapping_api_session_of_the_same_people_is_not_duplicated(people, repository):
    pairing_session_record(
        source="api",
        external_id="laptop-1",
        participants=[(people.ann, "driver"), (people.bo, "navigator"), (people.cy, "navigator")],
        started_at=at(-1),
        ended_at=at(1),
    )
    commits = [people.commit(repository, 0.5, "ann", "bo"), people.commit(repository, 8, "ann", "bo")]
    pairing_sessions_infer(repository=repository, commits=commits)
    assert [(s.started_at, s.ended_at) for s in _sessions()] == [(at(7.5), at(8))]
    assert PairingSession.objects.filter(source="api").count() == 1


def test_an_api_session_recorded_later_replaces_the_inferred_one(people, repository):
    pairing_sessions_infer(repository=repository, commits=[people.commit(repository, 0, "ann", "bo")])
    assert len(_sessions()) == 1
    pairing_session_record(
        source="manual",
        external_id="whiteboard",
        participants=[(people.ann, "driver"), (people.bo, "navigator")],
        started_at=at(-2),
        ended_at=at(-0.25),
    )
    assert _sessions() == []
    # And inference seen again does not bring it back.
    pairing_sessions_infer(repository=repository, commits=list(Commit.objects.all()))
    assert _sessions() == []


def test_ending_an_api_session_drops_the_inferred_sessions_it_covers(people, repository):
    session, _ = pairing_session_start(
        participants=[(people.ann.pk, "driver"), (people.bo.pk, "navigator")], started_at=at(-1)
    )
    # Commits pushed while the session was open were inferred before the API session was found to cover them
    # (say, by a worker that read just before the session started).
    PairingSession.objects.create(source=CO_AUTHOR, external_id="x", started_at=at(0), ended_at=at(0.5))
    PairingParticipant.objects.bulk_create(
        PairingParticipant(
            session_id=PairingSession.objects.get(external_id="x").pk, person=p, joined_at=at(0), left_at=at(0.5)
        )
        for p in (people.ann, people.bo)
    )
    pairing_session_end(session=session, ended_at=at(1))
    assert _sessions() == []


def test_the_session_is_on_the_branch_of_the_pull_request_the_commits_belong_to(people, repository):
    pull_request = PullRequestFactory(repository=repository, author=people.ann, head_ref="ann/retry")
    commits = [people.commit(repository, 0, "ann", "bo"), people.commit(repository, 1, "ann", "bo")]
    pull_request_commits_add(pull_request=pull_request, commits=commits)
    [session] = pairing_sessions_infer(repository=repository, commits=commits)
    assert session.branch == "ann/retry"


def test_external_ids_are_deterministic_and_scoped_to_the_repository(people, repository):
    commit = people.commit(repository, 0, "ann", "bo", sha="a" * 40)
    fork = RepositoryFactory()
    fork_commit = people.commit(fork, 0, "ann", "bo", sha="a" * 40)
    [session] = pairing_sessions_infer(repository=repository, commits=[commit])
    [fork_session] = pairing_sessions_infer(repository=fork, commits=[fork_commit])
    ids = "+".join(str(pk) for pk in sorted([people.ann.pk, people.bo.pk]))
    assert session.external_id == f"{repository.pk}/{'a' * 40}/{ids}"
    assert fork_session.external_id == f"{fork.pk}/{'a' * 40}/{ids}"


def test_inference_from_real_trailers_through_commit_upsert(people, repository):
    message = "Fix currency rounding\n\nRound half to even.\n\nCo-authored-by: Bo <BO@example.com>\nSigned-off-by: Ann"
    record = CommitRecord(
        sha="b" * 40,
        message=message,
        author=GitUserRecord(name="Ann", email="ann@example.com"),
        authored_at=at(0),
        co_authors=co_authors(message),
    )
    commit = commit_upsert(repository=repository, record=record)
    [session] = pairing_sessions_infer(repository=repository, commits=[commit])
    assert _people_of(session) == {people.ann, people.bo}


@pytest.mark.parametrize("count", [5, 50])
def test_inference_queries_do_not_grow_with_the_commits(people, repository, count, django_assert_max_num_queries):
    commits = [people.commit(repository, i * 0.1, "ann", "bo") for i in range(count)]
    commits += [people.commit(repository, 100 + i * 0.1, "bo", "cy") for i in range(count)]
    with django_assert_max_num_queries(17):  # reads, then a few writes per session: none per commit
        sessions = pairing_sessions_infer(repository=repository, commits=commits)
    assert len(sessions) == 2


# Pairing partners on a pull request ----------------------------------------------------------------------------------


def test_a_co_author_on_the_pull_requests_commits_is_a_partner(people, repository):
    pull_request = PullRequestFactory(repository=repository, author=people.ann)
    commits = [people.commit(repository, 0, "ann", "bo"), people.commit(repository, 1, "cy")]
    pull_request_commits_add(pull_request=pull_request, commits=commits)
    [partner] = pairing_partners_for_pull_request(pull_request=pull_request)
    assert (partner.person, partner.source) == (people.bo, "co_author")
    assert commits[0].sha[:12] in partner.detail


def test_a_commit_by_the_partner_co_authored_by_the_author_counts_too(people, repository):
    pull_request = PullRequestFactory(repository=repository, author=people.ann)
    pull_request_commits_add(pull_request=pull_request, commits=[people.commit(repository, 0, "bo", "ann")])
    assert [p.person for p in pairing_partners_for_pull_request(pull_request=pull_request)] == [people.bo]


def test_a_contributor_who_did_not_pair_with_the_author_is_not_a_partner(people, repository):
    pull_request = PullRequestFactory(repository=repository, author=people.ann)
    pull_request_commits_add(pull_request=pull_request, commits=[people.commit(repository, 0, "bo", "cy")])
    assert pairing_partners_for_pull_request(pull_request=pull_request) == []


def test_a_session_overlapping_the_commits_on_the_repository_or_the_branch_makes_a_partner(people, repository):
    pull_request = PullRequestFactory(repository=repository, author=people.ann, head_ref="ann/retry")
    pull_request_commits_add(
        pull_request=pull_request,
        commits=[people.commit(repository, 0, "ann"), people.commit(repository, 2, "ann")],
    )
    pairing_session_record(
        source="api",
        external_id="on-branch",
        participants=[(people.ann, "driver"), (people.bo, "navigator")],
        started_at=at(0.5),
        ended_at=at(1.5),
        branch="ann/retry",
    )
    pairing_session_record(
        source="api",
        external_id="elsewhere",
        participants=[(people.ann, "driver"), (people.cy, "navigator")],
        started_at=at(0.5),
        ended_at=at(1.5),
        repository=RepositoryFactory(),
    )
    [partner] = pairing_partners_for_pull_request(pull_request=pull_request)
    assert (partner.person, partner.source) == (people.bo, "session")


def test_a_session_just_before_the_only_commit_counts_but_not_one_the_day_before(people, repository):
    pull_request = PullRequestFactory(repository=repository, author=people.ann)
    pull_request_commits_add(pull_request=pull_request, commits=[people.commit(repository, 0, "ann")])
    for name, start in (("bo", at(-1)), ("cy", at(-25))):
        pairing_session_record(
            source="api",
            external_id=f"with-{name}",
            participants=[(people.ann, "driver"), (getattr(people, name), "navigator")],
            started_at=start,
            ended_at=start + dt.timedelta(minutes=45),
            repository=repository,
        )
    assert [p.person for p in pairing_partners_for_pull_request(pull_request=pull_request)] == [people.bo]


def test_a_partner_away_while_the_commits_were_written_is_not_a_partner(people, repository):
    """Bo left the session before Ann's commits and came back after them: each stay counts on its own."""
    pull_request = PullRequestFactory(repository=repository, author=people.ann, head_ref="ann/retry")
    pull_request_commits_add(pull_request=pull_request, commits=[people.commit(repository, 2, "ann")])
    session, _ = pairing_session_start(
        participants=[(people.ann.pk, "driver"), (people.bo.pk, "navigator"), (people.cy.pk, "navigator")],
        repository_id=repository.pk,
        started_at=at(0),
    )
    pairing_participant_remove(session=session, person=people.bo.pk, at=at(1))
    pairing_participant_add(session=session, person=people.bo.pk, at=at(3))
    pairing_session_end(session=session, ended_at=at(4))
    assert [p.person for p in pairing_partners_for_pull_request(pull_request=pull_request)] == [people.cy]


def test_a_session_on_another_branch_of_the_repository_is_another_change(people, repository):
    pull_request = PullRequestFactory(repository=repository, author=people.ann, head_ref="ann/retry")
    pull_request_commits_add(pull_request=pull_request, commits=[people.commit(repository, 0, "ann")])
    for name, branch in (("bo", "ann/other"), ("cy", "")):
        pairing_session_record(
            source="api",
            external_id=f"with-{name}",
            participants=[(people.ann, "driver"), (getattr(people, name), "navigator")],
            started_at=at(-0.25),
            ended_at=at(0.25),
            repository=repository,
            branch=branch,
        )
    assert [p.person for p in pairing_partners_for_pull_request(pull_request=pull_request)] == [people.cy]


def test_partners_exclude_the_author_bots_and_need_an_author(people, repository):
    copilot = PersonFactory(display_name="Copilot", is_bot=True)
    bot_email = IdentityFactory(person=copilot, kind=Identity.Kind.EMAIL, connection=None, value="copilot@github.com")
    pull_request = PullRequestFactory(repository=repository, author=people.ann)
    commit = people.commit(repository, 0, "ann")
    commit.co_authors.set([bot_email, people.email["ann"]])
    pull_request_commits_add(pull_request=pull_request, commits=[commit])
    assert pairing_partners_for_pull_request(pull_request=pull_request) == []
    anonymous = PullRequestFactory(repository=repository, author=None)
    assert pairing_partners_for_pull_request(pull_request=anonymous) == []


def test_partners_take_a_bounded_number_of_queries(people, repository, django_assert_max_num_queries):
    pull_request = PullRequestFactory(repository=repository, author=people.ann)
    commits = [people.commit(repository, i * 0.2, "ann", "bo" if i % 2 else "cy") for i in range(40)]
    pull_request_commits_add(pull_request=pull_request, commits=commits)
    with django_assert_max_num_queries(5):
        partners = pairing_partners_for_pull_request(pull_request=pull_request)
    assert {p.person for p in partners} == {people.bo, people.cy}


def test_attaching_an_unresolved_co_author_in_the_admin_infers_their_pairing(people, repository, client):
    from django.contrib.auth.models import User

    from reviews.integrations.records import CommitRecord, GitUserRecord
    from reviews.integrations.trailers import co_authors
    from reviews.models import Commit, Identity
    from reviews.services.pull_requests import commit_upsert

    message = "Fix\n\nCo-authored-by: Bo Private <bo@home.example>"
    ann_email = people.ann.identities.filter(kind="email").first()
    author = GitUserRecord(name="Ann", email=ann_email.value if ann_email else "ann@example.com")
    commit_upsert(
        repository=repository,
        record=CommitRecord(
            sha="f" * 40, message=message, author=author, authored_at=at(0), co_authors=co_authors(message)
        ),
    )
    unresolved = Identity.objects.get(value="bo@home.example")
    assert unresolved.person is None
    assert _sessions() == []
    from reviews.models import Membership
    from tests.factories import MembershipFactory, TeamFactory

    team = TeamFactory(slug="shop")
    MembershipFactory(team=team, person=people.bo)
    lead = User.objects.create_user("lead", password="pw", is_staff=True)  # a real lead of Bo's team
    MembershipFactory(team=team, person=PersonFactory(user=lead), role=Membership.Role.LEAD)
    client.force_login(lead)
    response = client.post(
        f"/admin/reviews/identity/{unresolved.pk}/change/",
        {"kind": "email", "value": "bo@home.example", "person": people.bo.pk, "external_id": "", "display_name": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Commit.objects.get(sha="f" * 40).co_authors.get().person == people.bo
    assert len(_sessions()) == 1
