"""`make demo`: signed sample webhooks from Aircall and Ringover to the running stack (`make run`),
then the CRM activities they became, with the trace of each decision.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import jwt
import redis

from adapters.crm.scenario import RedisActivityLog
from worker.config.settings import settings
from worker.ops.opscli import _record_text
from worker.pipeline.store import CallStatus, CallStore

CALL_START = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
AIRCALL_TOKEN = settings().demo_aircall_token.get_secret_value()
RINGOVER_KEY = settings().demo_ringover_key.get_secret_value()


def aircall_delivery() -> tuple[bytes, dict[str, str]]:
    started = int(CALL_START.timestamp())
    document = {
        "resource": "call",
        "event": "call.ended",
        "timestamp": int(time.time()),
        "token": AIRCALL_TOKEN,
        "data": {
            "id": 812731,
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
                "emails": [{"label": "Work", "value": "jane@acme.com"}],
                "phone_numbers": [{"label": "Mobile", "value": "+33 6 12 34 56 78"}],
            },
        },
    }
    return json.dumps(document).encode(), {"content-type": "application/json"}


def ringover_delivery() -> tuple[bytes, dict[str, str]]:
    started = int((CALL_START + dt.timedelta(hours=5)).timestamp())
    document = {
        "resource": "call",
        "event": "hangup",
        "timestamp": float(time.time()),
        "data": {
            "id": "17263546",
            "call_id": "8391047621",
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
    token = jwt.encode({"payload": document, "iat": int(time.time())}, RINGOVER_KEY, algorithm="HS512")
    return json.dumps(document).encode(), {
        "content-type": "application/json",
        "x-ringover-webhook-signature": token,
    }


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def main() -> int:
    base = f"http://127.0.0.1:{settings().port}"
    client = redis.Redis.from_url(settings().redis_url, decode_responses=True)
    try:
        urllib.request.urlopen(f"{base}/healthz", timeout=2).close()
        client.ping()
    except (OSError, redis.ConnectionError):
        print(
            f"callmatch demo: nothing answers at {base}; start the stack first with `make run` in another terminal"
        )
        return 1
    deliveries: list[tuple[str, str, Any]] = [
        ("aircall", "aircall:812731", aircall_delivery()),
        ("ringover", "ringover:8391047621", ringover_delivery()),
    ]
    for provider, _call_id, (body, headers) in deliveries:
        status, text = post(f"{base}/webhooks/demo/{provider}", body, headers)
        print(f"POST /webhooks/demo/{provider} -> {status} {text.strip()[:120]}")
        if status >= 300:
            print(f"callmatch demo: the receiver refused the {provider} webhook")
            return 1
    store = CallStore(client)
    deadline = time.monotonic() + 60
    pending = {call_id for _, call_id, _ in deliveries}
    while pending and time.monotonic() < deadline:
        for call_id in sorted(pending):
            record = store.get("demo", call_id)
            if record is not None and record.status in (CallStatus.WRITTEN, CallStatus.DEAD):
                pending.discard(call_id)
        time.sleep(0.2)
    if pending:
        print(
            f"callmatch demo: still waiting for {', '.join(sorted(pending))} after 60 s; is the worker running?"
        )
        return 1
    activities = {a["call_id"]: a for a in RedisActivityLog(client, "demo").all()}
    for _, call_id, _ in deliveries:
        print()
        print(_record_text(store.require("demo", call_id)))
        activity = activities.get(call_id)
        if activity is not None:
            shown = {
                k: activity[k]
                for k in (
                    "id",
                    "type",
                    "subject",
                    "who_id",
                    "what_id",
                    "account_id",
                    "opportunity_id",
                    "writes",
                )
            }
            print(f"  activity in the CRM: {json.dumps(shown)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
