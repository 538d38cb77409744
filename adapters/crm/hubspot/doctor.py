"""`callmatch doctor` for HubSpot: one line per check, `fail` only for what stops the tenant.

Credentials (an OAuth app's refresh token works now, or a private app's token is
accepted), scopes (an OAuth token's, from `GET /oauth/v1/access-tokens/{token}`; a
private app's by one harmless read per object, since its scopes cannot be listed),
each property callmatch needs (present, and the external id unique) or uses
(present, else what is lost), the deal pipelines, and the daily API budget left
(private apps: `GET /account-info/v3/api-usage/daily/private-apps`; OAuth apps have
no daily cap). The properties read here refresh the tenant's cached capabilities.
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.crm.hubspot.capabilities import (
    OBJECTS,
    Capabilities,
    PortalCapabilities,
    Requirement,
    fix_for,
    requirements,
)
from adapters.crm.hubspot.client import HubSpotClient, ScopeMissingError
from adapters.crm.hubspot.mapping import ClosedState, HubSpotMapping, closed_from_stage
from adapters.crm.hubspot.setup import SCHEMA_SCOPE
from adapters.crm.readiness import Check, Status
from adapters.errors import BudgetExhaustedError, ExternalError
from worker.core.model import Policy

READ_SCOPES = {
    "contacts": "crm.objects.contacts.read",
    "companies": "crm.objects.companies.read",
    "deals": "crm.objects.deals.read",
    "calls": "crm.objects.contacts.read",
    "meetings": "crm.objects.contacts.read",
    "owners": "crm.objects.owners.read",
}
"""What each read needs (calls and meetings are engagements: HubSpot checks the contacts scopes)."""
WRITE_SCOPES = ("crm.objects.contacts.write",)
"""Creating and updating calls and meetings, and associating them (W1, W3)."""
REQUIRED_SCOPES = tuple(dict.fromkeys([*READ_SCOPES.values(), *WRITE_SCOPES]))
LOW_BUDGET = 0.1
"""Warn when less than this fraction of the daily limit is left above the reserve."""

_APP_SETTINGS = "HubSpot: Settings > Integrations > Private Apps > the app > Scopes"


def _why(error: BaseException) -> str:
    return str(error).removeprefix("hubspot: ")


def run_doctor(
    client: HubSpotClient,
    mapping: HubSpotMapping,
    capabilities: PortalCapabilities,
    policy: Policy | None = None,
) -> list[Check]:
    """Every check; one that raises becomes a `fail` line naming the error, never a traceback.

    `policy`: the tenant's; the properties its rules v1.1 read are checked too (X1: companies' `type`)."""
    tenant = client.settings.tenant
    try:
        credentials = _guard("credentials", lambda: _credentials(client))
        if credentials.status is Status.FAIL:
            return [credentials]
        checks = [credentials]
        checks += _guard_many("scopes", lambda: _scopes(client))
        checks += _guard_many(
            "properties", lambda: _properties(client, mapping, capabilities, tenant, policy)
        )
        checks.append(_guard("daily API budget", lambda: _budget(client)))
    except BudgetExhaustedError as error:
        # Our own reserve stops every request, doctor's too: that is the one thing to say.
        return [
            Check(
                "daily API budget",
                Status.FAIL,
                f"callmatch's reserve of the daily limit is reached ({_why(error)}): nothing else was checked",
                fix="wait for HubSpot's daily reset (midnight in the portal's time zone), or lower crm.budget_reserve",
            )
        ]
    return checks


def _guard(name: str, run: Callable[[], Check]) -> Check:
    try:
        return run()
    except BudgetExhaustedError:
        raise
    except Exception as error:
        return Check(name, Status.FAIL, f"{type(error).__name__}: {_why(error)}")


def _guard_many(name: str, run: Callable[[], list[Check]]) -> list[Check]:
    try:
        return run()
    except BudgetExhaustedError:
        raise
    except Exception as error:
        return [Check(name, Status.FAIL, f"{type(error).__name__}: {_why(error)}")]


def _credentials(client: HubSpotClient) -> Check:
    if client.tokens.can_refresh:
        try:
            lifetime = client.verify_refresh()
        except BudgetExhaustedError:
            raise
        except ExternalError as error:
            return Check(
                "credentials",
                Status.FAIL,
                f"OAuth refresh refused: {_why(error)}",
                fix="install the app again to get a new refresh token (docs/hubspot.md, 'Getting a refresh token') "
                "and set crm.credentials.refresh_token",
            )
        left = f" (access token for {int(lifetime)} s)" if lifetime else ""
        return Check("credentials", Status.OK, f"OAuth refresh token accepted{left}")
    try:
        details = client.account_details()
    except BudgetExhaustedError:
        raise
    except ExternalError as error:
        if error.status == 401:
            return Check(
                "credentials",
                Status.FAIL,
                f"private app token refused: {_why(error)}",
                fix="HubSpot: Settings > Integrations > Private Apps > the app > Auth > rotate or copy the "
                "access token, and set crm.credentials.access_token",
            )
        if error.status == 403:  # accepted; the account-info read needs a scope we do not ask for
            return Check("credentials", Status.OK, "private app token accepted")
        raise
    portal = details.get("portalId")
    return Check(
        "credentials", Status.OK, "private app token accepted" + (f" (portal {portal})" if portal else "")
    )


def _scopes(client: HubSpotClient) -> list[Check]:
    if client.tokens.can_refresh:
        info = client.token_info()
        granted = {str(s) for s in info.get("scopes") or []}
        missing = [s for s in REQUIRED_SCOPES if s not in granted]
        out = [
            Check(
                "scopes",
                Status.FAIL if missing else Status.OK,
                f"missing {', '.join(missing)}" if missing else f"granted: {', '.join(REQUIRED_SCOPES)}",
                fix="add the scopes to the app (developer account > the app > Auth > Scopes) and install it again"
                if missing
                else None,
            )
        ]
        out.append(
            Check("setup scope", Status.OK, f"{SCHEMA_SCOPE} granted: setup can create properties")
            if SCHEMA_SCOPE in granted
            else Check(
                "setup scope",
                Status.WARN,
                f"{SCHEMA_SCOPE} not granted: `callmatch setup` cannot create properties",
                fix="an admin creates them by hand (`callmatch setup --dry-run` lists the steps), or add the scope",
            )
        )
        return out
    refused: list[str] = []
    for kind, scope in READ_SCOPES.items():
        try:
            if kind == "owners":
                client.first_owner()
            else:
                client.probe_read(kind)
        except ScopeMissingError as error:
            refused += list(error.scopes) or [scope]
        except BudgetExhaustedError:
            raise
        except ExternalError as error:
            if error.status != 403:
                raise
            refused.append(scope)
    missing = list(dict.fromkeys(refused))
    if missing:
        return [
            Check(
                "scopes",
                Status.FAIL,
                f"reads refused, missing {', '.join(missing)}",
                fix=f"{_APP_SETTINGS}: add {', '.join(missing)}",
            )
        ]
    return [
        Check(
            "scopes",
            Status.OK,
            "contacts, companies, deals, calls, meetings and owners readable; "
            f"{', '.join(WRITE_SCOPES)} (writes) is proven by the first write",
        )
    ]


def _properties(
    client: HubSpotClient,
    mapping: HubSpotMapping,
    capabilities: PortalCapabilities,
    tenant: str,
    policy: Policy | None = None,
) -> list[Check]:
    """Read the properties and pipelines afresh (this is also the tenant's new capabilities)."""
    properties: dict[str, frozenset[str]] = {}
    unique: dict[str, frozenset[str]] = {}
    out: list[Check] = []
    for kind in OBJECTS:
        try:
            listed = client.properties_of(kind)
        except BudgetExhaustedError:
            raise
        except ExternalError as error:
            out.append(
                Check(
                    f"{kind} properties",
                    Status.FAIL,
                    f"not readable: {_why(error)}",
                    fix=f"{_APP_SETTINGS}: grant the read scopes of {kind} and its schema",
                )
            )
            continue
        properties[kind] = frozenset(str(p["name"]) for p in listed if p.get("name"))
        unique[kind] = frozenset(str(p["name"]) for p in listed if p.get("name") and p.get("hasUniqueValue"))
    pipelines_check, pipelines = _pipelines(client)
    caps = Capabilities(properties, unique, pipelines, discovered_at=capabilities.now())
    for requirement in requirements(mapping, policy):
        if requirement.kind in properties:
            out.append(_property(caps, requirement, tenant))
    out.append(pipelines_check)
    if len(properties) == len(OBJECTS) and pipelines_check.status is not Status.FAIL:
        capabilities.replace(caps)
    return out


def _property(caps: Capabilities, requirement: Requirement, tenant: str) -> Check:
    name = f"property {requirement.path}"
    present = caps.has(requirement.kind, requirement.name)
    if requirement.required:
        if not present:
            return Check(name, Status.FAIL, f"missing: {requirement.loses}", fix=fix_for(tenant))
        if requirement.unique and not caps.is_unique(requirement.kind, requirement.name):
            return Check(
                name,
                Status.WARN,
                "present, not unique: HubSpot will not refuse a second activity with the same call id "
                "(W1 holds through the ledger and the search)",
                fix="create it with 'Require unique values' (HubSpot cannot change an existing property)",
            )
        unique = caps.is_unique(requirement.kind, requirement.name)
        return Check(name, Status.OK, "present" + (", unique" if unique else ""))
    if present:
        return Check(name, Status.OK, "present")
    return Check(name, Status.WARN, f"absent; lost: {requirement.loses}")


def _pipelines(client: HubSpotClient) -> tuple[Check, dict[str, dict[str, ClosedState]]]:
    try:
        listed = client.pipelines_of("deals")
    except BudgetExhaustedError:
        raise
    except ExternalError as error:
        return (
            Check(
                "pipelines",
                Status.FAIL,
                f"deal pipelines not readable: {_why(error)}",
                fix=f"{_APP_SETTINGS}: grant crm.objects.deals.read",
            ),
            {},
        )
    stages = {
        str(p["id"]): {str(s["id"]): closed_from_stage(s) for s in p.get("stages") or []} for p in listed
    }
    count = sum(len(s) for s in stages.values())
    if not stages:
        return Check("pipelines", Status.WARN, "no deal pipeline: every deal counts as open"), {}
    return Check("pipelines", Status.OK, f"{len(stages)} deal pipeline(s), {count} stages readable"), dict(
        stages
    )


def _budget(client: HubSpotClient) -> Check:
    reserve = client.settings.budget_reserve
    if client.tokens.can_refresh:
        return Check(
            "daily API budget",
            Status.OK,
            "OAuth apps have no daily cap (110 requests per 10 s per portal)",
        )
    try:
        results = client.daily_usage()
    except BudgetExhaustedError:
        raise
    except ExternalError as error:
        return Check("daily API budget", Status.WARN, f"usage not readable: {_why(error)}")
    usage = next((r for r in results if r.get("usageLimit")), None)
    if usage is None:
        return Check("daily API budget", Status.WARN, "HubSpot reported no daily limit")
    limit = int(usage["usageLimit"])
    used = int(usage.get("currentUsage") or 0)
    left = max(limit - used, 0)
    floor = int(limit * reserve)
    detail = (
        f"{left:,} of {limit:,} requests left today; callmatch stops at {floor:,} (reserve {reserve:.0%})"
    )
    if usage.get("resetsAt"):
        detail += f", resets {usage['resetsAt']}"
    if left <= floor:
        return Check(
            "daily API budget",
            Status.FAIL,
            detail,
            fix="wait for the reset, lower crm.budget_reserve, or buy HubSpot's API limit increase",
        )
    if left - floor < limit * LOW_BUDGET:
        return Check("daily API budget", Status.WARN, detail + "; little left above the reserve")
    return Check("daily API budget", Status.OK, detail)


__all__ = ["REQUIRED_SCOPES", "run_doctor"]
