"""Realistic provider deliveries, signed the way each provider signs them.

Shared by the receiver tests, the fuzz tests and the ingest benchmark.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

AIRCALL_TOKEN = "aircall-token-current"
AIRCALL_TOKEN_OLD = "aircall-token-previous"
RINGOVER_KEY = "ringover-webhook-key-current-" + "k" * 40
RINGOVER_KEY_OLD = "ringover-webhook-key-previous-" + "p" * 40
ZOOM_SECRET = "zoom-secret-token-current"
ZOOM_SECRET_OLD = "zoom-secret-token-previous"
TEAMS_STATE = "graph-client-state-current"
TEAMS_STATE_OLD = "graph-client-state-previous"
GOOGLE_AUDIENCE = "https://callmatch.test/webhooks/acme/google_meet"
GOOGLE_SERVICE_ACCOUNT = "pubsub-push@acme-project.iam.gserviceaccount.com"
GOOGLE_KID = "test-key-1"

NOW = dt.datetime(2026, 3, 10, 10, 0, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Post:
    """One HTTP delivery: body bytes, headers and query."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


GOOGLE_KEY = _rsa_key()
OTHER_KEY = _rsa_key()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def jwks(key: rsa.RSAPrivateKey, kid: str = GOOGLE_KID) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return {"keys": [jwk]}


def dumps(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def tenant_document(tmp_dir: str, **overrides: Any) -> dict[str, Any]:
    """A tenants document `acme` with all five providers and rotated secrets, and its environment."""
    doc: dict[str, Any] = {
        "version": 1,
        "tenants": {
            "acme": {
                "crm": {"kind": "salesforce", "instance_url": "https://acme.my.salesforce.test"},
                "policy": {"default_region": "FR", "timezone": "Europe/Paris"},
                "internal_domains": ["ourco.com"],
                "providers": {
                    "aircall": {
                        "webhook_secret_env": "T_AIRCALL",
                        "previous_webhook_secret_env": "T_AIRCALL_OLD",
                    },
                    "ringover": {
                        "webhook_secret_env": "T_RINGOVER",
                        "previous_webhook_secret_env": "T_RINGOVER_OLD",
                    },
                    "zoom": {"webhook_secret_env": "T_ZOOM", "previous_webhook_secret_env": "T_ZOOM_OLD"},
                    "google_meet": {
                        "audience": GOOGLE_AUDIENCE,
                        "service_account": GOOGLE_SERVICE_ACCOUNT,
                        "public_key_env": "T_GOOGLE_PEM",
                    },
                    "teams": {"webhook_secret_env": "T_TEAMS", "previous_webhook_secret_env": "T_TEAMS_OLD"},
                },
            }
        },
    }
    doc["tenants"]["acme"].update(overrides)
    return doc


ENVIRON = {
    "T_AIRCALL": AIRCALL_TOKEN,
    "T_AIRCALL_OLD": AIRCALL_TOKEN_OLD,
    "T_RINGOVER": RINGOVER_KEY,
    "T_RINGOVER_OLD": RINGOVER_KEY_OLD,
    "T_ZOOM": ZOOM_SECRET,
    "T_ZOOM_OLD": ZOOM_SECRET_OLD,
    "T_TEAMS": TEAMS_STATE,
    "T_TEAMS_OLD": TEAMS_STATE_OLD,
    "T_GOOGLE_PEM": public_pem(GOOGLE_KEY),
}


# --- Aircall -------------------------------------------------------------------------------


def aircall_call(call_id: int = 812731) -> dict[str, Any]:
    started = int(NOW.timestamp()) - 1800
    return {
        "id": call_id,
        "direct_link": f"https://api.aircall.io/v1/calls/{call_id}",
        "direction": "inbound",
        "status": "done",
        "started_at": started,
        "answered_at": started + 5,
        "ended_at": started + 1320,
        "duration": 1320,
        "raw_digits": "+33 6 12 34 56 78",
        "user": {"id": 456, "name": "Rep One", "email": "rep@ourco.com"},
        "number": {"id": 1234, "digits": "+33 1 89 00 00 00"},
        "contact": {
            "id": 789,
            "first_name": "Jane",
            "last_name": "Doe",
            "company_name": "Acme",
            "emails": [{"label": "Work", "value": "jane@acme.com"}],
            "phone_numbers": [{"label": "Mobile", "value": "+33 6 12 34 56 78"}],
        },
        "participants": [
            {"id": "456", "type": "user", "name": "Rep One", "phone_number": "+33 1 89 00 00 00"},
            {"id": "x1", "type": "external", "name": None, "phone_number": "+33 7 00 00 00 01"},
        ],
    }


def aircall(call_id: int = 812731, token: str | None = AIRCALL_TOKEN, event: str = "call.ended") -> Post:
    document: dict[str, Any] = {
        "resource": "call",
        "event": event,
        "timestamp": int(NOW.timestamp()),
        "data": aircall_call(call_id),
    }
    if token is not None:
        document["token"] = token
    return Post(dumps(document), {"content-type": "application/json"})


# --- Ringover ------------------------------------------------------------------------------


def ringover_event(call_id: str = "8391047621") -> dict[str, Any]:
    started = int(NOW.timestamp()) - 900
    return {
        "resource": "call",
        "event": "hangup",
        "timestamp": float(NOW.timestamp()),
        "data": {
            "id": "17263546",
            "call_id": call_id,
            "channel_id": "a1b2c3",
            "direction": "outbound",
            "is_internal": False,
            "is_answered": True,
            "start_time": started,
            "answered_time": started + 8,
            "hangup_time": started + 600,
            "duration_in_seconds": 600,
            "from_number": "33189000000",
            "to_number": "33612345678",
            "user": {"user_id": 77, "firstname": "Rep", "lastname": "One", "email": "rep@ourco.com"},
        },
    }


def ringover(
    call_id: str = "8391047621",
    key: str | None = RINGOVER_KEY,
    event: dict[str, Any] | None = None,
    signed: dict[str, Any] | None = None,
) -> Post:
    document = event if event is not None else ringover_event(call_id)
    headers = {"content-type": "application/json"}
    if key is not None:
        claims = {"payload": signed if signed is not None else document, "iat": int(NOW.timestamp())}
        headers["x-ringover-webhook-signature"] = jwt.encode(claims, key, algorithm="HS512")
    return Post(dumps(document), headers)


# --- Zoom ----------------------------------------------------------------------------------


def zoom_sign(secret: str, timestamp: str, body: bytes) -> str:
    return (
        "v0="
        + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    )


def zoom_document(uuid: str = "4444AAAiAAAAAiAiAiiAii==") -> dict[str, Any]:
    return {
        "event": "meeting.ended",
        "event_ts": int(NOW.timestamp() * 1000),
        "payload": {
            "account_id": "AAAAAABBBB",
            "object": {
                "id": "85432190876",
                "uuid": uuid,
                "host_id": "z8yCxjabcdEFGHfp8uQ",
                "host_email": "rep@ourco.com",
                "topic": "Acme renewal",
                "type": 2,
                "start_time": "2026-03-10T09:00:00Z",
                "end_time": "2026-03-10T09:45:00Z",
                "duration": 45,
                "timezone": "Europe/Paris",
            },
        },
    }


def zoom(
    document: dict[str, Any] | None = None,
    secret: str | None = ZOOM_SECRET,
    at: dt.datetime = NOW,
    body: bytes | None = None,
) -> Post:
    raw = body if body is not None else dumps(document if document is not None else zoom_document())
    timestamp = str(int(at.timestamp()))
    headers = {"content-type": "application/json", "x-zm-request-timestamp": timestamp}
    if secret is not None:
        headers["x-zm-signature"] = zoom_sign(secret, timestamp, raw)
    return Post(raw, headers)


# --- Google Meet ---------------------------------------------------------------------------


def google_token(
    key: rsa.RSAPrivateKey = GOOGLE_KEY,
    audience: str = GOOGLE_AUDIENCE,
    email: str = GOOGLE_SERVICE_ACCOUNT,
    issued: dt.datetime = NOW,
    issuer: str = "https://accounts.google.com",
) -> str:
    claims = {
        "aud": audience,
        "azp": "1122334455",
        "email": email,
        "email_verified": True,
        "exp": int((issued + dt.timedelta(hours=1)).timestamp()),
        "iat": int(issued.timestamp()),
        "iss": issuer,
        "sub": "1122334455",
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": GOOGLE_KID})


def google_document(
    record: str = "conferenceRecords/abc-123", event_type: str | None = None
) -> dict[str, Any]:
    data = base64.b64encode(dumps({"conferenceRecord": {"name": record}})).decode()
    return {
        "message": {
            "attributes": {
                "ce-datacontenttype": "application/json",
                "ce-id": f"ended-{record.rsplit('/', 1)[-1]}",
                "ce-source": "//meet.googleapis.com/spaces/jQCFfuBOdN5z",
                "ce-specversion": "1.0",
                "ce-subject": "//meet.googleapis.com/spaces/jQCFfuBOdN5z",
                "ce-time": "2026-03-10T09:45:10.000Z",
                "ce-type": event_type or "google.workspace.meet.conference.v2.ended",
            },
            "data": data,
            "messageId": "10000000001",
            "publishTime": "2026-03-10T09:45:11.000Z",
        },
        "subscription": "projects/acme-project/subscriptions/meet-push",
    }


def google(
    document: dict[str, Any] | None = None, token: str | None = None, body: bytes | None = None
) -> Post:
    raw = body if body is not None else dumps(document if document is not None else google_document())
    headers = {"content-type": "application/json"}
    bearer = token if token is not None else google_token()
    if bearer:
        headers["authorization"] = f"Bearer {bearer}"
    return Post(raw, headers)


# --- Microsoft Teams -----------------------------------------------------------------------


def teams_notification(record_id: str, state: str = TEAMS_STATE, change: str = "created") -> dict[str, Any]:
    return {
        "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
        "subscriptionExpirationDateTime": "2026-03-12T11:00:00.0000000Z",
        "changeType": change,
        "resource": f"communications/callRecords/{record_id}",
        "resourceData": {
            "@odata.type": "#microsoft.graph.callRecord",
            "@odata.id": f"communications/callRecords/{record_id}",
            "id": record_id,
        },
        "clientState": state,
        "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
    }


def teams(*record_ids: str, state: str = TEAMS_STATE) -> Post:
    ids = record_ids or ("e523d2ed-2966-4b6b-925b-754a88034cc5",)
    document = {"value": [teams_notification(record_id, state) for record_id in ids]}
    return Post(dumps(document), {"content-type": "application/json"})
