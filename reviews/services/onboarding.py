"""Bringing a person into a team: their login, and their accounts and addresses that Tandem already knows."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction

from reviews.models import Identity, Membership, Person
from reviews.services.people import identity_attach


def person_login_create(*, person: Person, username: str, email: str = "", password: str = "") -> User:
    """A login for a person who has none. Without a password they set one through "forgot password"."""
    if person.user_id is not None:
        raise PermissionDenied(f"{person} already has a login.")
    with transaction.atomic():
        user = User.objects.create_user(username=username, email=email, password=password or None)
        person.user = user
        person.save(update_fields=["user"])
    return user


def lead_logins_enable(*, person_ids: Iterable[int]) -> int:
    """Staff status for the logins of those who lead a team, so that they reach the admin. Never taken away here:
    a login that leads nothing leads nothing in the admin either (`reviews.access`)."""
    leading = Membership.objects.filter(person_id__in=list(person_ids), role=Membership.Role.LEAD)
    return User.objects.filter(person__in=leading.values("person"), is_staff=False).update(is_staff=True)


def identity_claim(*, identity: Identity, person: Person) -> Identity:
    """Attach an identity that is nobody's yet (unresolved) to a person. One that someone else claimed meanwhile is
    refused: an identity already linked to a person is never moved by a claim."""
    with transaction.atomic():
        claimed = Identity.objects.filter(pk=identity.pk, person__isnull=True).update(person=person)
        if not claimed:
            raise PermissionDenied(f"{identity} is already linked to someone.")
        identity.refresh_from_db()
        return identity_attach(identity=identity, person=person)
