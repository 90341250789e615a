from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from accounts import rights, roles, signals

        rights.connect_signals(self.get_model("User"))
        post_migrate.connect(signals.ensure_encryption_canary, sender=self)
        # After every app's migrate (the permissions of later apps exist by then).
        post_migrate.connect(roles.ensure_staff_groups, dispatch_uid="ensure_staff_groups")
