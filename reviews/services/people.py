"""Resolve provider accounts and git e-mail addresses to people."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import IntegrityError, transaction

from reviews.integrations.bots import is_bot
from reviews.integrations.records import GitUserRecord, UserRecord
from reviews.models import Connection, Identity, Person, Team
from reviews.prepared import PreparedRead
from reviews.services.audit import SYSTEM, Actor, audit_event_record, field_changes

_GITHUB_NOREPLY = re.compile(r"^(?:\d+\+)?(?P<login>[^@]+)@users\.noreply\.github\.com$", re.I)


def _identity_get_or_create(
    *, kind: str, value: str, connection: Connection | None, defaults: dict[str, Any]
) -> Identity:
    lookup = {"kind": kind, "value": value.lower(), "connection": connection}
    identity = Identity.objects.select_related("person").filter(**lookup).first()
    if identity is not None:
        return identity
    try:
        with transaction.atomic():
            return Identity.objects.create(**lookup, **defaults)
    except IntegrityError:
        # Another worker created it between our read and write.
        return Identity.objects.select_related("person").get(**lookup)


# The identities of the accounts a delivery names, read in one query (`accounts_preloaded`): connection id →
# lower-cased login → identity with its person. Only what exists is here; a login not found is looked up as usual.
_preloaded: ContextVar[tuple[int, dict[str, Identity]] | None] = ContextVar("identities_preloaded", default=None)


# An event's identities, compiled once per process (`reviews.prepared`).
_IDENTITY = PreparedRead(
    lambda kind, connection, value: Identity.objects.select_related("person").filter(
        kind=kind, connection_id=connection, value=value
    ),
    kind=str,
    connection=int,
    value=str,
)
_IDENTITIES = PreparedRead(
    lambda kind, connection, values: Identity.objects.select_related("person").filter(
        kind=kind, connection_id=connection, value__in=values
    ),
    kind=str,
    connection=int,
    values=list[str],
)


@contextmanager
def accounts_preloaded(*, connection: Connection, accounts: Iterable[UserRecord | None]) -> Iterator[None]:
    """Within: `person_from_account` finds the identities of these accounts without a query each. An event names
    several (its pull request's author, the requested reviewers, the reviewer): one query reads them all. The
    identities found are the very instances `person_from_account` then updates, so a second look sees the change."""
    logins = {account.login.lower() for account in accounts if account is not None and account.login}
    if len(logins) < 2:
        yield  # one login: looking it up is the same one query
        return
    rows = _IDENTITIES.all(kind=connection.provider, connection=connection.pk, values=sorted(logins))
    token = _preloaded.set((connection.pk, {identity.value: identity for identity in rows}))
    try:
        yield
    finally:
        _preloaded.reset(token)


def _identity_of_login(connection: Connection, login: str) -> Identity | None:
    preloaded = _preloaded.get()
    if preloaded is not None and preloaded[0] == connection.pk and login in preloaded[1]:
        return preloaded[1][login]
    return _IDENTITY.first(kind=connection.provider, connection=connection.pk, value=login)


def person_known(*, connection: Connection, account: UserRecord | None) -> tuple[bool, Person | None]:
    """`person_from_account` when it would write nothing: (True, the person it returns); (False, None) when it would
    create or rename an identity, tie one to a person, or mark the person a bot. For a caller that must lock a row of
    its own before any of those writes (a new pull request's: `pull_request_upsert`)."""
    if account is None or not account.login:
        return True, person_from_account(connection=connection, account=account)  # never writes
    identity = _identity_of_login(connection, account.login.lower())
    if identity is None or identity.person is None:
        return False, None
    if is_bot(account.login, marked=account.is_bot) and not identity.person.is_bot:
        return False, None
    return True, identity.person


def person_from_account(*, connection: Connection, account: UserRecord | None) -> Person | None:
    """The person behind a GitHub login or GitLab username, creating both when new.

    Logins are matched on the connection; a login seen under a new name but the same provider user id is a
    rename, and the identity follows it.
    """
    if account is None:
        return None
    kind = connection.provider
    if not account.login:
        # Known only by the provider's user id (GitLab hooks name an author that way): never create from that.
        if not account.external_id:
            return None
        known = Identity.objects.select_related("person").filter(
            kind=kind, connection=connection, external_id=account.external_id
        )
        identity = known.first()
        return identity.person if identity else None
    login = account.login.lower()
    identity = _identity_of_login(connection, login)
    if identity is None and account.external_id:
        identity = (
            Identity.objects.select_related("person")
            .filter(kind=kind, connection=connection, external_id=account.external_id)
            .first()
        )
        if identity is not None:
            identity.value = login
            identity.save(update_fields=["value"])
    if identity is None:
        identity = _identity_get_or_create(
            kind=kind,
            value=login,
            connection=connection,
            defaults={"external_id": account.external_id, "display_name": account.name},
        )
    bot = is_bot(account.login, marked=account.is_bot)
    if identity.person is not None:
        existing = identity.person
        if bot and not existing.is_bot:
            existing.is_bot = True
            existing.save(update_fields=["is_bot"])
        return existing
    # The account's public e-mail ties it to the same person's other accounts and to their git commits.
    email_identity = None
    if "@" in account.email:
        email_identity = _identity_get_or_create(
            kind=Identity.Kind.EMAIL, value=account.email, connection=None, defaults={"display_name": account.name}
        )
    person: Person | None = email_identity.person if email_identity else None
    if person is None:
        person = Person.objects.create(display_name=account.name or account.login, is_bot=bot)
    Identity.objects.filter(pk=identity.pk, person__isnull=True).update(person=person)
    if email_identity is not None:
        Identity.objects.filter(pk=email_identity.pk, person__isnull=True).update(person=person)
    identity.refresh_from_db(fields=["person"])
    return identity.person


def identity_from_git_user(
    *, git_user: GitUserRecord, account_person: Person | None = None, create_person: bool = False
) -> Identity:
    """The e-mail identity of a git author, committer or co-author.

    It is attached to `account_person` when the VCS says whose account the e-mail belongs to, to the GitHub
    login a noreply address names, or (with `create_person`) to a new person; otherwise it stays unresolved
    for a lead to attach in the admin.
    """
    identity = _identity_get_or_create(
        kind=Identity.Kind.EMAIL, value=git_user.email, connection=None, defaults={"display_name": git_user.name}
    )
    if identity.person_id is not None:
        return identity
    person = account_person or _person_from_noreply(git_user.email)
    if person is None and create_person:
        person = Person.objects.create(display_name=git_user.name or git_user.email, is_bot=is_bot(git_user.name))
    if person is not None:
        Identity.objects.filter(pk=identity.pk, person__isnull=True).update(person=person)
        identity.refresh_from_db(fields=["person"])
    return identity


def _person_from_noreply(email: str) -> Person | None:
    match = _GITHUB_NOREPLY.match(email)
    if not match:
        return None
    identity = (
        Identity.objects.select_related("person")
        .filter(kind=Identity.Kind.GITHUB, value=match["login"].lower(), person__isnull=False)
        .first()
    )
    return identity.person if identity else None


def identity_attach(
    *, identity: Identity, person: Person, actor: Actor = SYSTEM, before: Person | None = None
) -> Identity:
    """A lead says whose an unresolved identity is: its commits become that person's, and the pairing their
    co-author trailers show is inferred again. Pull requests they belong to get a fresh verdict. Audited in each of
    the person's teams."""
    from reviews.models import Commit, Team
    from reviews.selectors.affected import merged_pull_requests_of_identity, open_pull_requests_of_identity
    from reviews.services.enqueue import pull_request_evaluations_enqueue
    from reviews.services.figures import pull_request_figures_owed_mark
    from reviews.services.pairing import pairing_sessions_infer_for_identity

    with transaction.atomic():
        was = Person.objects.filter(identities=identity).first()
        identity.person = person
        identity.save(update_fields=["person"])
        changes = field_changes({"person": was}, {"person": person})
        for team in Team.objects.filter(memberships__person=person).distinct() or [None]:
            audit_event_record(actor=actor, action="identity.attach", target=identity, team=team, changes=changes)
        Commit.objects.filter(author_identity=identity, author__isnull=True).update(author=person)
        pairing_sessions_infer_for_identity(identity_id=identity.pk)
        pull_request_evaluations_enqueue(pull_request_ids=open_pull_requests_of_identity(identity=identity))
        pull_request_figures_owed_mark(pull_requests=merged_pull_requests_of_identity(identity=identity))
    return identity


def person_away_set(*, person: Person, away_until: dt.date | None, actor: Actor = SYSTEM) -> Person:
    """Mark someone away up to and including a day (None: back). Away people are never suggested as reviewers.
    Audited, for each of the person's teams."""
    before = person.away_until
    if before == away_until:
        return person
    with transaction.atomic():
        person.away_until = away_until
        person.save(update_fields=["away_until"])
        changes = field_changes({"away_until": before}, {"away_until": away_until})
        teams: list[Team | None] = [membership.team for membership in person.memberships.select_related("team")]
        for team in teams or [None]:
            audit_event_record(actor=actor, action="person.away", target=person, team=team, changes=changes)
    return person
