"""Microsoft Teams as Graph documents it: callRecords notifications, the record, `participants_v2`.

Shapes follow the Graph reference (Get callRecord, List participants_v2, change
notifications for callRecords): `organizer_v2` names the organizer by id and
display name only, while each `participants_v2` row carries the full
communicationsIdentitySet (every kind present, all but one null) and, for users,
`userPrincipalName`. The people cover what a tenant really meets: our members
with and without a UPN, a user of another tenant, a B2B guest (`#EXT#`), an
anonymous guest, a PSTN caller, an ACS user and a bot.
"""

from __future__ import annotations

from typing import Any

from tests.adapters.providers import samples

OUR_TENANT = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
OTHER_TENANT = "dc368399-474c-4d40-900c-6265431fd81f"
RECORD_ID = "e523d2ed-2966-4b6b-925b-754a88034cc5"
REP_ID = "821809f5-0000-0000-0000-3b5136c0e777"
COLLEAGUE_ID = "f69e2c00-0000-0000-0000-185e5f5f5d8a"
NO_UPN_ID = "13fd6bf0-f646-4b82-b0ad-cd28ce10d6e3"
PARTNER_ID = "00005994-851d-4988-bbc3-413bbf089e13"
GUEST_ID = "5e1b7c1e-0000-0000-0000-0000b2b2b2b2"

KINDS = (
    "acsUser",
    "spoolUser",
    "phone",
    "guest",
    "encrypted",
    "onPremises",
    "acsApplicationInstance",
    "spoolApplicationInstance",
    "applicationInstance",
    "application",
    "device",
    "user",
)


def identity_set(kind: str, value: dict[str, Any]) -> dict[str, Any]:
    """A communicationsIdentitySet as participants_v2 returns it: every kind listed, one set."""
    identity: dict[str, Any] = dict.fromkeys(KINDS)
    identity[kind] = value
    return identity


def user(user_id: str, name: str, upn: str | None = None, tenant: str = OUR_TENANT) -> dict[str, Any]:
    value: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.userIdentity",
        "id": user_id,
        "displayName": name,
        "tenantId": tenant,
    }
    if upn is not None:
        value["userPrincipalName"] = upn
    return value


def participant(kind: str, value: dict[str, Any], row_id: str | None = None) -> dict[str, Any]:
    return {
        "id": row_id or str(value.get("id") or value.get("displayName")),
        "identity": identity_set(kind, value),
    }


def rep() -> dict[str, Any]:
    return participant("user", user(REP_ID, "Rep One", "Rep.One@ourco.com"))


def colleague() -> dict[str, Any]:
    return participant("user", user(COLLEAGUE_ID, "Colleague", "colleague@ourco.com"))


def member_without_upn() -> dict[str, Any]:
    """One of ours named by id alone: only `GET /users/{id}` can tell the email."""
    return participant("user", user(NO_UPN_ID, "Quiet Member"))


def partner() -> dict[str, Any]:
    """A user of another tenant (federated chat and calls): their UPN is their address."""
    return participant(
        "user", user(PARTNER_ID, "Partner Person", "partner.person@partner.test", OTHER_TENANT)
    )


def b2b_guest() -> dict[str, Any]:
    """A B2B guest in our tenant: the UPN spells their own address before `#EXT#`."""
    upn = "jane.doe_acme.com#EXT#@ourco.onmicrosoft.com"
    return participant("user", user(GUEST_ID, "Jane Doe (Guest)", upn))


def anonymous_guest() -> dict[str, Any]:
    return participant("guest", {"id": "b1f0e7a4-anon", "displayName": "Visitor From Lobby"})


def phone(number: str = "+33612345678", name: str | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"id": number}
    if name is not None:
        value["displayName"] = name
    return participant("phone", value, row_id=f"phone-{number[-4:]}")


def acs_user() -> dict[str, Any]:
    return participant("acsUser", {"id": "8:acs:1234-abcd", "displayName": "Web Widget Caller"})


def bot() -> dict[str, Any]:
    """An application (a recording bot): not a person, never a participant."""
    return participant("application", {"id": "a1b2c3d4-bot", "displayName": "Recorder Bot"})


def organizer(value: dict[str, Any], kind: str = "user") -> dict[str, Any]:
    """`organizer_v2` as Get callRecord expands it: the id and the identity, no userPrincipalName."""
    plain = {k: v for k, v in value.items() if k != "userPrincipalName"}
    return {"id": str(plain.get("id")), "identity": {kind: plain}}


def record(
    record_id: str = RECORD_ID,
    call_type: str = "groupCall",
    organizer_v2: dict[str, Any] | None = None,
    start: str = "2026-03-10T09:00:00.1234567Z",
    end: str = "2026-03-10T09:45:00.7654321Z",
) -> dict[str, Any]:
    """A call record as `GET /communications/callRecords/{id}` answers (organizer_v2 expanded)."""
    base = "https://graph.microsoft.com/v1.0/$metadata#communications/callRecords"
    body: dict[str, Any] = {
        "@odata.context": f"{base}/$entity",
        "version": 1,
        "type": call_type,
        "modalities": ["audio", "video"] if call_type == "groupCall" else ["audio"],
        "lastModifiedDateTime": "2026-03-10T09:52:24.582757Z",
        "startDateTime": start,
        "endDateTime": end,
        "id": record_id,
        "organizer_v2@odata.context": f"{base}('{record_id}')/organizer_v2/$entity",
        "organizer_v2": organizer_v2 or organizer(user(REP_ID, "Rep One")),
        "participants_v2@odata.context": f"{base}('{record_id}')/participants_v2/$entity",
    }
    if call_type == "groupCall":
        body["joinWebUrl"] = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0"
    return body


def pstn_inbound_record(record_id: str, number: str = "+33612345678") -> dict[str, Any]:
    """A PSTN caller rang one of ours: the caller (a phone identity) organized the peer-to-peer call."""
    return record(record_id, "peerToPeer", {"id": number, "identity": {"phone": {"id": number}}})


def pstn_outbound_record(record_id: str) -> dict[str, Any]:
    return record(record_id, "peerToPeer", organizer(user(REP_ID, "Rep One")))


def notification(record_id: str = RECORD_ID, change: str = "created", **changes: Any) -> dict[str, Any]:
    """The documented callRecords change notification (resourceData names the record)."""
    document = samples.teams_notification(record_id, change=change)
    document["resourceData"]["@odata.type"] = "#Microsoft.Graph.callrecord"
    document.update(changes)
    return document


def delivery(*notifications: dict[str, Any]) -> samples.Post:
    return samples.Post(samples.dumps({"value": list(notifications)}), {"content-type": "application/json"})
