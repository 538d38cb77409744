"""Microsoft Graph's bodies as declared models: callRecords change notifications and the API answers read.

Documented in the Graph v1.0 reference (Change notifications > changeNotificationCollection,
changeNotification, lifecycle notifications; callRecords > Get callRecord, List participants_v2,
communicationsIdentitySet; Users > Get user; Subscriptions > create, update, list). Collections
answer `{"value": [...], "@odata.nextLink": ...}`; ids are text, times ISO-8601.

A notification is read in steps (its `clientState` first, then as a lifecycle or as a change
notification), so a delivery keeps its notifications as sent and the webhook reads each with
these models. An identity set is read as `client._People` reads it: the phone's number, then the
first kind that names the person and no further, and a participant's user ids and UPNs (they map
one to the other): what is never read cannot refuse a body.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, Field, model_validator

from worker.config.documents import refuse
from worker.ingest.payloads import (
    IdText,
    IsoTime,
    Items,
    Payload,
    RequiredIdText,
    RequiredIsoTime,
    RequiredText,
    Text,
)

Raw = dict[str, Any]
"""A JSON object kept as sent, to be read in steps with the models below."""


def _not_blank(value: str | None) -> str | None:
    """A given (non-empty) text that is only spaces is as missing as an absent one."""
    if value and not value.strip():
        raise refuse("missing")
    return value


# --- change notifications (the webhook) -------------------------------------------------------------


class Notifications(Payload):
    """Graph `changeNotificationCollection`: `{"value": [changeNotification, ...]}`, each kept as sent."""

    value: tuple[Raw, ...]  # required: absent or null is missing


class Signed(Payload):
    """What is read of each notification before any is trusted: the subscription's `clientState`."""

    clientState: Text = None


class Lifecycle(Payload):
    """A lifecycle notification (`reauthorizationRequired`, `subscriptionRemoved`, `missed`)."""

    lifecycleEvent: RequiredIdText
    subscriptionId: RequiredIdText


RecordId = Annotated[IdText, AfterValidator(_not_blank)]
"""`resourceData.id`: absent or empty names no record (then `resource` does); only spaces is missing."""


class ResourceData(Payload):
    """A change notification's `resourceData` (`#microsoft.graph.callRecord`): the record's `id`."""

    id: RecordId = None


class Change(Payload):
    """A `changeNotification` on `communications/callRecords`: `created`, `updated` or `deleted`."""

    changeType: RequiredText
    resourceData: ResourceData | None = None


class ByResource(Payload):
    """A change notification without `resourceData.id`: the record is named by `resource` alone."""

    resource: RequiredText  # communications/callRecords/{id}


# --- call records (the client) ----------------------------------------------------------------------


class UserIdentity(Payload):
    """Graph `communicationsUserIdentity` (the `user` and `onPremises` kinds of an identity set)."""

    id: IdText = None
    userPrincipalName: Text = None
    tenantId: Text = None
    displayName: Text = None


class KnownUser(UserIdentity):
    """A participant's `user` or `onPremises`: an id and a UPN given together (`learn` maps one to the other) are not blank."""

    @model_validator(mode="after")
    def _mapped(self) -> Self:
        if self.id and self.userPrincipalName:
            for name, value in (("id", self.id), ("userPrincipalName", self.userPrincipalName)):
                if not value.strip():
                    raise refuse("missing", at=(name,))
        return self


class PhoneIdentity(Payload):
    """Graph `identity` of the `phone` kind: `id` is the number (E.164)."""

    id: Text = None
    displayName: Text = None


class NamedIdentity(Payload):
    """Graph `identity` of a kind known by name only (`guest`, `acsUser`, ...)."""

    displayName: Text = None


USERS = ("user", "onPremises")
NAMED_ONLY = ("guest", "acsUser", "azureCommunicationServicesUser", "spoolUser", "encrypted", "externalUser")
"""The kinds of an identity set kept by display name, in the order they are looked at."""


def _given(value: Raw, key: str) -> bool:
    """`value[key]` read as text is not empty (or is no text: kept, to be refused)."""
    return value.get(key) not in (None, "")


def _kept(value: Raw, *keys: str) -> Raw:
    """`value` with only `keys`, those it has."""
    return {key: value[key] for key in keys if key in value}


def _as_read(identity: Raw, learns: bool) -> Raw:
    """The identity set without the parts `_People.who` (and, for a participant, `learn`) never reads.

    `who` reads the phone's number, then looks at `user`, `onPremises`, the phone and the
    named-only kinds in turn and stops at the first that names the person (a user with an id
    or a UPN, a phone with a number, a kind with a display name), read whole. The kinds it
    passes over are read for their id and UPN (users) or display name; those after it not at
    all. `learn` also reads a participant's users for their id and, given an id, their UPN.
    """
    kept: Raw = {}
    found = False
    for kind in USERS:
        user = identity.get(kind)
        if found and not learns:
            continue
        if not isinstance(user, dict):  # absent, or refused as no object
            kept[kind] = user
        elif found:
            kept[kind] = _kept(user, "id", "userPrincipalName") if _given(user, "id") else _kept(user, "id")
        elif _given(user, "id") or _given(user, "userPrincipalName"):
            kept[kind] = user
            found = True
        else:
            kept[kind] = _kept(user, "id", "userPrincipalName")
    phone = identity.get("phone")
    if isinstance(phone, dict) and (found or not _given(phone, "id")):
        phone = _kept(phone, "id")
    else:
        found = found or isinstance(phone, dict)
    kept["phone"] = phone
    for kind in NAMED_ONLY:
        if found:
            break
        other = identity.get(kind)
        kept[kind] = other
        found = isinstance(other, dict) and _given(other, "displayName")
    return kept


class IdentitySet(Payload):
    """Graph `communicationsIdentitySet`: every kind may be listed, all but one null."""

    learns: ClassVar[bool] = False

    user: UserIdentity | None = None
    onPremises: UserIdentity | None = None
    phone: PhoneIdentity | None = None
    guest: NamedIdentity | None = None
    acsUser: NamedIdentity | None = None
    azureCommunicationServicesUser: NamedIdentity | None = None
    spoolUser: NamedIdentity | None = None
    encrypted: NamedIdentity | None = None
    externalUser: NamedIdentity | None = None

    @model_validator(mode="before")
    @classmethod
    def _unread(cls, value: object) -> object:
        return _as_read(value, cls.learns) if isinstance(value, dict) else value

    def users(self) -> tuple[UserIdentity | None, ...]:
        return (self.user, self.onPremises)

    def named_only(self) -> tuple[NamedIdentity | None, ...]:
        """The kinds of `NAMED_ONLY`, in that order."""
        return (
            self.guest,
            self.acsUser,
            self.azureCommunicationServicesUser,
            self.spoolUser,
            self.encrypted,
            self.externalUser,
        )


class ParticipantIdentitySet(IdentitySet):
    """A `participants_v2` row's identity set: its users also teach the organizer's UPN."""

    learns: ClassVar[bool] = True

    user: KnownUser | None = None
    onPremises: KnownUser | None = None


class Participant(Payload):
    """A row of `participants_v2` (Graph callRecords `participant`)."""

    identity: ParticipantIdentitySet | None = None


class ParticipantsPage(Payload):
    """A page of `GET /communications/callRecords/{id}/participants_v2`."""

    value: Annotated[tuple[Participant, ...], Items] = ()
    next_link: Text = Field(None, alias="@odata.nextLink")


class Organizer(Payload):
    """A call record's `organizer_v2` (Graph callRecords `organizer`)."""

    identity: IdentitySet | None = None


class CallRecord(Payload):
    """`GET /communications/callRecords/{id}` (Graph `callRecord`): organizer, type and times."""

    organizer_v2: Organizer | None = None
    type: Text = None  # groupCall, peerToPeer, unknown
    startDateTime: RequiredIsoTime
    endDateTime: IsoTime = None


class User(Payload):
    """`GET /users/{id}?$select=mail,userPrincipalName` (Graph `user`): the UPN only read without a mail."""

    mail: Text = None
    userPrincipalName: Text = None

    @model_validator(mode="before")
    @classmethod
    def _unread(cls, value: object) -> object:
        if isinstance(value, dict) and isinstance(value.get("mail"), str) and value["mail"].strip():
            return _kept(value, "mail")
        return value


# --- subscriptions ----------------------------------------------------------------------------------


class Subscription(Payload):
    """Graph `subscription`, as `POST` and `PATCH /subscriptions` answer and `GET /subscriptions` lists it."""

    expirationDateTime: RequiredIsoTime
    id: RequiredIdText
    resource: RequiredText
    notificationUrl: Text = None


class SubscriptionsPage(Payload):
    """A page of `GET /subscriptions`: each row is read as a `Subscription` on its own."""

    value: Annotated[tuple[Raw, ...], Items] = ()
    next_link: Text = Field(None, alias="@odata.nextLink")


class RecordRow(Payload):
    """A row of `GET /communications/callRecords?$select=id,startDateTime`."""

    id: RequiredIdText


class RecordsPage(Payload):
    """A page of `GET /communications/callRecords` (the records of a gap)."""

    value: Annotated[tuple[RecordRow, ...], Items] = ()
    next_link: Text = Field(None, alias="@odata.nextLink")
