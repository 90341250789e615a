from django.urls import path

from sandbox.calendly_sandbox import api, views

app_name = "sandbox_calendly"

# Calendly's own paths: no trailing slashes.
api_patterns = [
    path("api/", api.root, name="api-root"),
    path("api/users/me", api.users_me, name="api-users-me"),
    path("api/users/<str:uuid>", api.user_detail, name="api-user"),
    path("api/event_types", api.event_types, name="api-event-types"),
    path("api/event_types/<str:uuid>", api.event_type_detail, name="api-event-type"),
    path("api/scheduled_events", api.events_list, name="api-events"),
    path("api/scheduled_events/<str:uuid>", api.event_detail, name="api-event"),
    path(
        "api/scheduled_events/<str:uuid>/invitees",
        api.event_invitees,
        name="api-event-invitees",
    ),
    path(
        "api/scheduled_events/<str:event_uuid>/invitees/<str:uuid>",
        api.invitee_detail,
        name="api-invitee",
    ),
    path(
        "api/scheduled_events/<str:uuid>/cancellation",
        api.event_cancellation,
        name="api-event-cancellation",
    ),
    path("api/webhook_subscriptions", api.webhook_subscriptions, name="api-subscriptions"),
    path(
        "api/webhook_subscriptions/<str:uuid>",
        api.webhook_subscription_detail,
        name="api-subscription",
    ),
    path(
        "api/data_compliance/deletion/invitees",
        api.invitee_data_deletion,
        name="api-invitee-deletion",
    ),
]

page_patterns = [
    path("", views.dashboard, name="dashboard"),
    path("hosts/", views.host_create, name="host-create"),
    path("subscriptions/", views.subscription_create, name="subscription-create"),
    path("subscriptions/<str:uuid>/delete/", views.subscription_delete, name="subscription-delete"),
    path(
        "subscriptions/<str:uuid>/disable/",
        views.subscription_disable,
        name="subscription-disable",
    ),
    path("fault/", views.fault_set, name="fault"),
    path("events/<str:uuid>/cancel/", views.event_cancel, name="event-cancel"),
    path("invitees/<str:uuid>/no-show/", views.invitee_no_show, name="no-show"),
    path("booked/", views.booked, name="booked"),
    path("cancellations/<str:uuid>/", views.cancel, name="cancel"),
    path("reschedulings/<str:uuid>/", views.reschedule, name="reschedule"),
    # Last: a host's pages take any slug the paths above do not.
    path("<slug:host_slug>/", views.host_page, name="host"),
    path("<slug:host_slug>/<slug:event_type_slug>/", views.schedule, name="schedule"),
]

urlpatterns = api_patterns + page_patterns
