from django.db import models


class Category(models.TextChoices):
    SECURITY = "security", "Security"
    TRANSACTION = "transaction", "Transaction"
    DATA = "data", "Data"
    ACCESS = "access", "Access"


class ActorType(models.TextChoices):
    USER = "user", "User"
    SYSTEM = "system", "System component"
    ANONYMOUS = "anonymous", "Anonymous"
