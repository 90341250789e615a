from typing import Any

from django.contrib.auth.management.commands import changepassword

from core.encryption import blind_index


class Command(changepassword.Command):
    help = "Change a user's password, naming the user by email address."

    def handle(self, *args: Any, **options: Any) -> Any:
        # Django looks the user up by USERNAME_FIELD, which holds the blind index.
        if options.get("username"):
            options["username"] = blind_index(options["username"])
        return super().handle(*args, **options)
