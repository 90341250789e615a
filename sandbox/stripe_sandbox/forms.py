from __future__ import annotations

import re
from decimal import Decimal

from django import forms

from sandbox.stripe_sandbox.models import RestrictedKey

DEFAULT_TERMS = (
    "Free cancellation up to 24 hours before the appointment; 50 % refund up to 2 hours "
    "before; no refund afterwards."
)
RESOURCES = (
    ("checkout_sessions", "Checkout Sessions"),
    ("payment_intents", "PaymentIntents"),
    ("charges", "Charges"),
    ("refunds", "Refunds"),
    ("customers", "Customers"),
    ("events", "Events"),
    ("disputes", "Disputes"),
    ("privacy_redaction_jobs", "Redaction jobs"),
)


class CreateSessionForm(forms.Form):
    item_name = forms.CharField(max_length=200, initial="Consultation, 60 minutes")
    amount = forms.DecimalField(
        min_value=Decimal("0.50"),
        max_value=Decimal(999999),
        decimal_places=3,
        initial=Decimal("80.00"),
        help_text="In major units, e.g. 80.00",
    )
    currency = forms.CharField(min_length=3, max_length=3, initial="eur")
    automatic_tax = forms.BooleanField(required=False, initial=True)
    refund_terms = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=1200, initial=DEFAULT_TERMS
    )
    customer_email = forms.EmailField(required=False)

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].lower()
        if not re.fullmatch(r"[a-z]{3}", currency):
            raise forms.ValidationError("A three-letter ISO currency code, e.g. eur.")
        return currency


class RestrictedKeyForm(forms.Form):
    name = forms.CharField(max_length=100, initial="Slotpay restricted key")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        for resource, label in RESOURCES:
            # Left out = none: the safe default, and older forms post fewer resources.
            self.fields[resource] = forms.ChoiceField(
                label=label, choices=RestrictedKey.Access.choices, initial="none", required=False
            )

    def permissions(self) -> dict[str, str]:
        return {
            resource: self.cleaned_data[resource]
            for resource, _ in RESOURCES
            if self.cleaned_data[resource] not in ("", RestrictedKey.Access.NONE)
        }


class DisputeActionForm(forms.Form):
    """Move an open dispute on, as the merchant and the card network would."""

    EVIDENCE, WON, LOST = "evidence", "won", "lost"
    ACTIONS = (
        (EVIDENCE, "Submit evidence"),
        (WON, "Close as won"),
        (LOST, "Close as lost"),
    )

    dispute = forms.RegexField(regex=r"^du_[A-Za-z0-9]{1,60}$", max_length=64)
    action = forms.ChoiceField(choices=ACTIONS)
    evidence = forms.CharField(required=False, max_length=2000)
