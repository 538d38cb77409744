"""The console's routes: HTML pages and the forms they post, under /console.

Each route checks the caller first (`_caller`: worker.ops.auth's `principal` and `check`,
viewer to read, admin to change) and then calls the operations API's `Operations`, kept
on the app by `worker.ops.admin.mount`. A refusal is a page, not JSON: no or an expired
session goes to the sign-in page, another tenant's page or a viewer's change is a 403
page. A form that worked redirects (303) to the page it came from with `done=` naming
what happened; one that did not is shown again with the error, naming the field.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import redis
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from worker.config.tokens import Role
from worker.core.model import Case
from worker.core.normalize import mask_email, mask_phone
from worker.ops import doctor_log
from worker.ops.api import (
    REVIEW_SIZE,
    CallFilters,
    ChooseBody,
    Operations,
    OverrideBody,
    ReplayBody,
    UnlockBody,
)
from worker.ops.auth import (
    BEARER,
    CSRF_FIELD,
    SAFE_METHODS,
    SESSION,
    SIGN_IN_PAGE,
    ApiError,
    Principal,
    check,
    csrf_token,
    principal,
)
from worker.ops.console import views
from worker.ops.console.figures import rate_limit_waits
from worker.pipeline.store import CallStatus

log = logging.getLogger("callmatch.console")
B = TypeVar("B", bound=BaseModel)

HERE = Path(__file__).resolve().parent
PREFIX = "/console"
PAGE_SIZE = 50
STYLESHEET = (HERE / "static" / "console.css").read_bytes()
# No script of any kind, styles from this site only, forms post here only, never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# What `done=` says after a form worked: fixed texts, so no page ever shows text taken from a URL.
DONE = {
    "opportunity": "Opportunity changed and locked. The call is being refreshed and written back to the CRM.",
    "account": "Account changed and locked. The call is being refreshed and written back to the CRM.",
    "contacts": "Contacts changed and locked. The call is being refreshed and written back to the CRM.",
    "unlock": "Unlocked. The call is being refreshed: the rules decide that field again.",
    "refresh": "Refresh enqueued: the rules run again on today's CRM data, then the activity is written back.",
    "choose": "Choice applied and remembered for these contacts. The call is being written back.",
    "replay": "Sent back to the stage where it stopped.",
    "replay-all": "Every dead letter of this tenant was sent back to the stage where it stopped.",
    "doctor": "Doctor ran; its report is below.",
}

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["part"] = views.path_part
_env.filters["when"] = views.short_time


class ConsoleRefusal(Exception):
    """A caller the console turns away: 401 goes to the sign-in page, others are an error page."""

    def __init__(self, status: int, error: str):
        super().__init__(error)
        self.status = status
        self.error = error


def _page(
    request: Request, template: str, who: Principal | None, code: int = 200, **context: Any
) -> HTMLResponse:
    """A page of the console: the template with the caller, its tenants and its CSRF token."""
    html = _env.get_template(template).render(
        who=who,
        csrf=csrf_token(request) if who is not None else "",
        csrf_field=CSRF_FIELD,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=code, headers=SECURITY_HEADERS)


def _operations(request: Request) -> Operations:
    found = getattr(request.app.state, "callmatch_operations", None)
    if not isinstance(found, Operations):
        raise ConsoleRefusal(503, "the operations API is not mounted on this receiver")
    return found


def _caller(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller (bearer token or session cookie), allowed `role` on the route's tenant."""

    async def allowed(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        cookie: Annotated[str | None, Depends(SESSION)],
    ) -> Principal:
        try:
            who = await principal(request, bearer, cookie)
            tenant = request.path_params.get("tenant")
            check(who, tenant if isinstance(tenant, str) else None, role)
        except ApiError as exc:
            raise ConsoleRefusal(exc.status, exc.error) from None
        return who

    allowed.__name__ = f"console_{role}"
    return allowed


Viewer = Annotated[Principal, Depends(_caller("viewer"))]
Admin = Annotated[Principal, Depends(_caller("admin"))]


def _run(action: Callable[[], Any]) -> Any:
    """An operation; its ApiError as the console's refusal (404 unknown, 503 Redis away...)."""
    try:
        return action()
    except ApiError as exc:
        raise ConsoleRefusal(exc.status, exc.error) from None
    except redis.RedisError:
        raise ConsoleRefusal(503, "Redis is unreachable; try again in a moment") from None


def _done(location: str, what: str, **query: str) -> RedirectResponse:
    return RedirectResponse(f"{location}?{urlencode({'done': what, **query})}", status_code=303)


def _notice(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _tenants(request: Request, who: Principal) -> list[str]:
    return [t.name for t in _run(lambda: _operations(request).tenants(who))]


def _base(request: Request, who: Principal, tenant: str, section: str) -> dict[str, Any]:
    """What every tenant page shows around its content: the tenant, the tenants to switch to, the section."""
    return {
        "tenant": tenant,
        "tenants": _tenants(request, who),
        "section": section,
        "can_change": who.is_admin,
        "notice": _notice(request),
    }


def _tenant_url(tenant: str, page: str = "calls") -> str:
    return f"{PREFIX}/tenants/{views.path_part(tenant)}/{page}"


def _call_url(tenant: str, call_id: str) -> str:
    return f"{_tenant_url(tenant)}/{views.path_part(call_id)}"


# --- the call page ------------------------------------------------------------------------------


def _call_context(request: Request, operations: Operations, tenant: str, call_id: str) -> dict[str, Any]:
    """Everything the call page shows: the record, its CRM records with names and links, the trace read."""
    record: dict[str, Any] = _run(lambda: operations.explain(tenant, call_id))
    decision = {**UNDECIDED, **(record.get("decision") or {})}
    trace = list(decision.get("trace") or [])
    lost = views.runner_ups(trace, decision["opportunity_id"])
    candidates = list(decision.get("candidates") or [])
    crm = _run(lambda: operations.records(tenant, call_id, record))
    config = operations.pipeline().tenant(tenant)
    written = record.get("written") or None
    event = record.get("event") or {}
    return {
        "record": record,
        "call_id": call_id,
        "decided": record.get("decision") is not None,
        "decision": decision,
        "event": event,
        "participants": _participants(event),
        "steps": views.timeline(trace),
        "lost": lost,
        "candidates": candidates,
        "records": crm.records,
        "crm_kind": config.crm.kind,
        "attempts": views.attempts(record.get("attempts") or {}),
        "changes": views.changes(record.get("changes") or []),
        "written": written,
        "activity_url": crm.activity_url,
        "locked": list(record.get("locked") or []),
        "error": None,
        "error_field": None,
    }


def _participants(event: Mapping[str, Any]) -> list[str]:
    """The call's participants as the trace names them: a name when given, email and phone masked."""
    shown = []
    for person in event.get("participants") or []:
        if not isinstance(person, Mapping):
            continue
        parts = [str(person["name"])] if person.get("name") else []
        if person.get("email"):
            parts.append(mask_email(str(person["email"])))
        if person.get("phone"):
            parts.append(mask_phone(str(person["phone"])))
        shown.append(" · ".join(parts) or "(no email, no phone)")
    return shown


async def _show_call(
    request: Request, who: Principal, tenant: str, call_id: str, error: ApiError | None = None
) -> HTMLResponse:
    operations = _operations(request)
    context = await run_in_threadpool(_call_context, request, operations, tenant, call_id)
    if error is not None:
        context["error"], context["error_field"] = error.error, error.field
    return _page(
        request,
        "call.html",
        who,
        code=error.status if error is not None else 200,
        **_base(request, who, tenant, "calls"),
        **context,
    )


# --- routes -------------------------------------------------------------------------------------


def console_router() -> APIRouter:
    """Every page and form of the console (the app must have `worker.ops.admin.mount`'s Operations)."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    @router.get("/static/console.css")
    def stylesheet() -> Response:
        return Response(STYLESHEET, media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    @router.get("/sign-in", response_class=HTMLResponse)
    def sign_in(request: Request, error: str | None = None, next: str | None = None) -> HTMLResponse:
        return _page(request, "sign_in.html", None, error=_sign_in_error(error), next=next or f"{PREFIX}/")

    @router.get("", response_class=HTMLResponse)
    @router.get("/", response_class=HTMLResponse)
    def home(request: Request, who: Viewer) -> Response:
        tenants = _tenants(request, who)
        if len(tenants) == 1:
            return RedirectResponse(_tenant_url(tenants[0]), status_code=303)
        return _page(
            request, "tenants.html", who, tenants=tenants, tenant=None, section="tenants", notice=None
        )

    @router.get("/tenants/{tenant}", response_class=HTMLResponse)
    @router.get("/tenants/{tenant}/", response_class=HTMLResponse)
    def tenant_home(tenant: str, who: Viewer) -> Response:
        return RedirectResponse(_tenant_url(tenant), status_code=303)

    @router.get("/tenants/{tenant}/calls", response_class=HTMLResponse)
    def calls(request: Request, tenant: str, who: Viewer) -> HTMLResponse:
        return _calls_page(request, who, tenant)

    @router.get("/tenants/{tenant}/calls/{call_id:path}", response_class=HTMLResponse)
    async def call(request: Request, tenant: str, call_id: str, who: Viewer) -> HTMLResponse:
        return await _show_call(request, who, tenant, call_id)

    @router.post("/tenants/{tenant}/fix/{what}/{call_id:path}")
    async def fix(request: Request, tenant: str, what: str, call_id: str, who: Admin) -> Response:
        """Change the opportunity, the account or the contacts; ids are checked in the CRM first."""
        form = await request.form()
        operations = _operations(request)
        try:
            body = _override_body(what, form)
            await run_in_threadpool(operations.override, who, tenant, call_id, body)
        except ApiError as exc:
            if exc.status in (400, 422):
                return await _show_call(request, who, tenant, call_id, exc)
            raise ConsoleRefusal(exc.status, exc.error) from None
        return _done(_call_url(tenant, call_id), what)

    @router.post("/tenants/{tenant}/unlock/{call_id:path}")
    async def unlock(request: Request, tenant: str, call_id: str, who: Admin) -> Response:
        form = await request.form()
        fields = [str(f) for f in form.getlist("field") if isinstance(f, str) and f]
        operations = _operations(request)
        try:
            if not fields:
                raise ApiError(400, "field: tick at least one locked field to unlock", "field")
            await run_in_threadpool(_unlock, operations, who, tenant, call_id, fields)
        except ApiError as exc:
            if exc.status in (400, 422):
                return await _show_call(request, who, tenant, call_id, exc)
            raise ConsoleRefusal(exc.status, exc.error) from None
        return _done(_call_url(tenant, call_id), "unlock")

    @router.post("/tenants/{tenant}/refresh/{call_id:path}")
    async def refresh(request: Request, tenant: str, call_id: str, who: Admin) -> Response:
        await run_in_threadpool(_run, lambda: _operations(request).refresh(tenant, call_id))
        return _done(_call_url(tenant, call_id), "refresh")

    @router.get("/tenants/{tenant}/review", response_class=HTMLResponse)
    async def review(request: Request, tenant: str, who: Viewer) -> HTMLResponse:
        context = await run_in_threadpool(_review_context, request, tenant)
        return _page(request, "review.html", who, **_base(request, who, tenant, "review"), **context)

    @router.post("/tenants/{tenant}/choose/{call_id:path}")
    async def choose(request: Request, tenant: str, call_id: str, who: Admin) -> Response:
        """One click in the review queue: a candidate of an ambiguous call, or an open opportunity."""
        form = await request.form()
        operations = _operations(request)
        opportunity, account = _text(form, "opportunity_id") or None, _text(form, "account_id") or None
        back = _text(form, "back")
        try:
            if _text(form, "how") == "override":
                body = _body(OverrideBody, opportunity_id=opportunity, account_id=account)
                await run_in_threadpool(operations.override, who, tenant, call_id, body)
            else:
                chosen = _body(ChooseBody, opportunity_id=opportunity, account_id=account)
                await run_in_threadpool(operations.choose, who, tenant, call_id, chosen)
        except ApiError as exc:
            raise ConsoleRefusal(exc.status, exc.error) from None
        target = _call_url(tenant, call_id) if back == "call" else _tenant_url(tenant, "review")
        return _done(target, "choose")

    @router.get("/tenants/{tenant}/dead-letters", response_class=HTMLResponse)
    def dead_letters(request: Request, tenant: str, who: Viewer) -> HTMLResponse:
        letters = _run(lambda: _operations(request).dead_letters(tenant))
        return _page(
            request,
            "dead_letters.html",
            who,
            **_base(request, who, tenant, "dead-letters"),
            letters=letters,
        )

    @router.post("/tenants/{tenant}/dead-letters/replay")
    async def replay(request: Request, tenant: str, who: Admin) -> Response:
        form = await request.form()
        everything = _text(form, "all") == "1"
        call_ids = [str(c) for c in form.getlist("call_id") if isinstance(c, str) and c]
        body = _run(lambda: _body(ReplayBody, call_ids=call_ids, all=everything))
        await run_in_threadpool(_run, lambda: _operations(request).replay(tenant, body))
        return _done(_tenant_url(tenant, "dead-letters"), "replay-all" if everything else "replay")

    @router.get("/tenants/{tenant}/health", response_class=HTMLResponse)
    async def health(request: Request, tenant: str, who: Viewer) -> HTMLResponse:
        context = await run_in_threadpool(_health_context, request, tenant)
        return _page(request, "health.html", who, **_base(request, who, tenant, "health"), **context)

    @router.post("/tenants/{tenant}/health/doctor")
    async def doctor(request: Request, tenant: str, who: Viewer) -> Response:
        """Run doctor now (a read of the CRM and providers, as the API's GET doctor: viewers may)."""
        await run_in_threadpool(_run_doctor, request, tenant)
        return _done(_tenant_url(tenant, "health"), "doctor")

    return router


def _sign_in_error(error: str | None) -> str | None:
    """What the sign-in page says after a refusal: fixed texts only (the URL's words are never shown)."""
    if not error:
        return None
    if error.startswith("the operations API is off"):
        return (
            "Sign-in is off on this receiver: set CALLMATCH_ADMIN_TOKEN, or give tenants tokens in"
            " `access:` of the tenants file."
        )
    return (
        "Unknown token: check it (a tenant's viewer or admin token, or the global admin token) and try again."
    )


UNDECIDED: dict[str, Any] = {
    "case": None,
    "contact_ids": [],
    "lead_ids": [],
    "account_id": None,
    "opportunity_id": None,
    "candidates": [],
    "trace": [],
}


def _body(model: type[B], **values: Any) -> B:
    """The API's request body from a form's values; a value it refuses is a 400 naming the field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ())) or "(form)"
        raise ApiError(400, f"{field}: {first.get('msg', 'invalid')}", field) from None


def _override_body(what: str, form: FormData) -> OverrideBody:
    """The fix a form asks for: a picked candidate or a typed id (typed wins), as the API's body."""
    if what == "opportunity":
        chosen = _text(form, "opportunity_other") or _text(form, "opportunity_id")
        if not chosen:
            raise ApiError(400, "opportunity_id: pick an opportunity or type its id", "opportunity_id")
        return _body(OverrideBody, opportunity_id=chosen)
    if what == "account":
        chosen = _text(form, "account_other") or _text(form, "account_id")
        if not chosen:
            raise ApiError(400, "account_id: pick an account or type its id", "account_id")
        return _body(OverrideBody, account_id=chosen)
    if what == "contacts":
        picked = [str(c) for c in form.getlist("contact_id") if isinstance(c, str) and c]
        typed = views.parse_ids(_text(form, "contacts_other"))
        ids = list(dict.fromkeys([*picked, *typed]))
        if not ids:
            raise ApiError(400, "contact_ids: tick at least one contact or type an id", "contact_ids")
        return _body(OverrideBody, contact_ids=ids)
    raise ApiError(404, f"nothing to change called {what!r}: opportunity, account or contacts")


def _unlock(operations: Operations, who: Principal, tenant: str, call_id: str, fields: list[str]) -> None:
    """Unlock fields through the API's own operation; the refresh that applies it follows."""
    operations.unlock(who, tenant, call_id, _body(UnlockBody, fields=fields))


def _filters(request: Request) -> dict[str, str]:
    """The Calls page's filters as given (empty ones left out)."""
    names = ("status", "case", "since", "until", "has_opportunity", "provider")
    return {
        n: request.query_params.get(n, "").strip() for n in names if request.query_params.get(n, "").strip()
    }


def _calls_page(request: Request, who: Principal, tenant: str) -> HTMLResponse:
    """The calls list through the API's own listing: same filters, same cursor, same refusals."""
    operations = _operations(request)
    filters = _filters(request)
    cursor = request.query_params.get("cursor") or None
    error: ApiError | None = None
    page: dict[str, Any] = {"items": [], "next_cursor": None}
    try:
        has = filters.get("has_opportunity")
        if has not in (None, "yes", "no"):
            raise ApiError(400, "has_opportunity: expected yes or no", "has_opportunity")
        wanted = CallFilters(
            status=filters.get("status"),
            case=filters.get("case"),
            since=filters.get("since"),
            until=filters.get("until"),
            has_opportunity=None if has is None else has == "yes",
            provider=filters.get("provider"),
            limit=PAGE_SIZE,
            cursor=cursor,
        )
        page = operations.calls(tenant, wanted)
    except ApiError as exc:
        if exc.status not in (400, 422):
            raise ConsoleRefusal(exc.status, exc.error) from None
        error = exc
    config = _run(lambda: operations.pipeline().tenant(tenant))
    next_cursor = page.get("next_cursor")
    return _page(
        request,
        "calls.html",
        who,
        code=error.status if error else 200,
        **_base(request, who, tenant, "calls"),
        items=list(page.get("items") or []),
        next_query=urlencode({**filters, "cursor": next_cursor}) if next_cursor else None,
        first_query=urlencode(filters) if cursor else None,
        filters=filters,
        statuses=[s.value for s in CallStatus],
        cases=[c.value for c in Case],
        providers=sorted(config.providers),
        error=error.error if error else None,
        error_field=error.field if error else None,
    )


def _review_context(request: Request, tenant: str) -> dict[str, Any]:
    """The queue through the API's own operation (GET .../review/details): the same groups and CRM names."""
    queue = _run(lambda: _operations(request).review_queue(tenant, REVIEW_SIZE))
    return {
        "ambiguous": queue.ambiguous,
        "candidates": queue.candidates,
        "without": queue.without,
        "choices": queue.choices,
        "unmatched": queue.unmatched,
    }


def _health_context(request: Request, tenant: str) -> dict[str, Any]:
    operations = _operations(request)
    client = operations.redis_client
    if client is None:
        raise ConsoleRefusal(503, "no Redis client: the operations API was mounted without one")
    status = _run(lambda: operations.status(tenant))
    mine = next((t for t in status.get("tenants") or [] if t.get("tenant") == tenant), None)
    report = _run(lambda: doctor_log.last(client, tenant))
    return {
        "status": status,
        "mine": mine,
        "statuses": [s.value for s in CallStatus],
        "waits": rate_limit_waits(tenant),
        "report": report,
    }


def _run_doctor(request: Request, tenant: str) -> None:
    """Doctor through the API's own operation, which keeps its report as the tenant's last (Health shows it)."""
    operations = _operations(request)
    _run(lambda: operations.doctor(tenant))  # which keeps the report


# --- mounting -----------------------------------------------------------------------------------


def mount_console(app: FastAPI) -> None:
    """The console's routes and its refusal pages, on an app where `worker.ops.admin.mount` ran."""
    app.include_router(console_router())

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleRefusal)
        if exc.status == 401:
            back = request.url.path if request.method in SAFE_METHODS else f"{PREFIX}/"
            query = urlencode({"next": back})
            return RedirectResponse(f"{SIGN_IN_PAGE}?{query}", status_code=303)
        log.info("console refused %s %s: %s %s", request.method, request.url.path, exc.status, exc.error)
        return _page(request, "error.html", None, code=exc.status, status_code=exc.status, error=exc.error)

    app.add_exception_handler(ConsoleRefusal, refused)
