from typing import Any

from django.contrib.auth.management.commands import changepassword
from django.core.management.base import CommandError

from accounts.models import User
from core.encryption import blind_indexes


class Command(changepassword.Command):
    help = "Change a user's password, naming the user by email address."

    def handle(self, *args: Any, **options: Any) -> Any:
        # Django looks the user up by USERNAME_FIELD, which holds the blind index (under
        # whichever configured key the user is indexed: a re-index may be under way).
        if options.get("username"):
            user = User.objects.filter(email_index__in=blind_indexes(options["username"])).first()
            if user is None:
                raise CommandError("No user has this email address.")
            options["username"] = user.email_index
        return super().handle(*args, **options)
