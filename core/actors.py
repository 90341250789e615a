"""Who does something: a signed-in person, or one of our components named by a string.

Every service that changes something takes an ``actor`` of this type and hands it to
``audit.record``, which files a user under its primary key and a string as a system
actor (``"bookings"``, ``"payments.webhooks"``). ``core`` imports no app of ours, so
the user is Django's base class, whatever the user model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

Actor: TypeAlias = "AbstractBaseUser | str"
