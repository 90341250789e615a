from __future__ import annotations

import zoneinfo
from datetime import datetime

from django import forms
from django.core.exceptions import ValidationError

from sandbox.calendly_sandbox.models import EventType
from sandbox.calendly_sandbox.services import UTM_KEYS, WEBHOOK_EVENTS

# Paths beside the scheduling pages: no host may take them as a slug.
RESERVED_SLUGS = {
    "api",
    "booked",
    "cancellations",
    "events",
    "fault",
    "hosts",
    "invitees",
    "reschedulings",
    "subscriptions",
}
DURATIONS = [(15, "15 minutes"), (30, "30 minutes"), (45, "45 minutes"), (60, "60 minutes")]


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError("Not a time zone name (e.g. Europe/Berlin).")


class HostEventTypeForm(forms.Form):
    host_name = forms.CharField(max_length=200, initial="Ada Builder")
    host_email = forms.EmailField(initial="ada@builder.example")
    host_slug = forms.SlugField(max_length=100, initial="ada")
    host_timezone = forms.CharField(
        max_length=64, initial="Europe/Berlin", validators=[validate_timezone]
    )
    event_name = forms.CharField(max_length=200, initial="30 Minute Meeting")
    event_slug = forms.SlugField(max_length=100, initial="30min")
    duration = forms.TypedChoiceField(choices=DURATIONS, coerce=int, initial=30)
    redirect_url = forms.URLField(
        assume_scheme="https",
        max_length=500,
        required=False,
        help_text="Empty: a sandbox confirmation page.",
    )
    question = forms.CharField(max_length=300, required=False, initial="What should we discuss?")

    def clean_host_slug(self) -> str:
        slug = self.cleaned_data["host_slug"].lower()
        if slug in RESERVED_SLUGS:
            raise ValidationError("This slug is reserved.")
        return slug

    def clean(self) -> dict:
        data = super().clean() or {}
        if EventType.objects.filter(
            host__slug=data.get("host_slug"), slug=(data.get("event_slug") or "").lower()
        ).exists():
            raise ValidationError("This host already has an event type with that slug.")
        return data


class BookingForm(forms.Form):
    start = forms.ChoiceField(
        widget=forms.RadioSelect,
        error_messages={
            "invalid_choice": "That time is no longer available: pick another.",
        },
    )
    name = forms.CharField(max_length=200)
    email = forms.EmailField()
    first_name = forms.CharField(max_length=100, required=False, widget=forms.HiddenInput)
    last_name = forms.CharField(max_length=100, required=False, widget=forms.HiddenInput)
    timezone = forms.CharField(max_length=64, validators=[validate_timezone])
    answer = forms.CharField(max_length=10000, required=False, widget=forms.Textarea)
    utm_source = forms.CharField(max_length=500, required=False, widget=forms.HiddenInput)
    utm_medium = forms.CharField(max_length=500, required=False, widget=forms.HiddenInput)
    utm_campaign = forms.CharField(max_length=500, required=False, widget=forms.HiddenInput)
    utm_content = forms.CharField(max_length=1000, required=False, widget=forms.HiddenInput)
    utm_term = forms.CharField(max_length=500, required=False, widget=forms.HiddenInput)

    def __init__(self, *args: object, slots: list[datetime], question: str, **kwargs: object):
        super().__init__(*args, **kwargs)
        self.fields["start"].choices = [(s.isoformat(), s.isoformat()) for s in slots]
        if question:
            self.fields["answer"].label = question
        else:
            del self.fields["answer"]

    def clean_start(self) -> datetime:
        return datetime.fromisoformat(self.cleaned_data["start"])

    def tracking(self) -> dict[str, str]:
        return {key: self.cleaned_data.get(key) or "" for key in UTM_KEYS}


class RescheduleForm(forms.Form):
    start = forms.ChoiceField(
        widget=forms.RadioSelect,
        error_messages={
            "invalid_choice": "That time is no longer available: pick another.",
        },
    )
    reason = forms.CharField(max_length=500, required=False)

    def __init__(self, *args: object, slots: list[datetime], **kwargs: object):
        super().__init__(*args, **kwargs)
        self.fields["start"].choices = [(s.isoformat(), s.isoformat()) for s in slots]

    def clean_start(self) -> datetime:
        return datetime.fromisoformat(self.cleaned_data["start"])


class CancelForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False)


class SubscriptionForm(forms.Form):
    callback_url = forms.URLField(
        assume_scheme="https", max_length=500, initial="http://127.0.0.1:8000/webhooks/calendly/"
    )
    events = forms.MultipleChoiceField(
        choices=[(e, e) for e in WEBHOOK_EVENTS],
        initial=["invitee.created", "invitee.canceled", "invitee_no_show.created"],
        widget=forms.CheckboxSelectMultiple,
    )
    signing_key = forms.CharField(
        max_length=200, required=False, help_text="Empty: CALENDLY_WEBHOOK_SIGNING_KEYS[0]."
    )


class FaultForm(forms.Form):
    status = forms.TypedChoiceField(
        choices=[(429, "429 Too Many Requests"), (500, "500"), (503, "503")],
        coerce=int,
        initial=429,
    )
    count = forms.IntegerField(min_value=0, max_value=100, initial=1)
    retry_after = forms.IntegerField(min_value=0, max_value=60, initial=1)
