"""`callmatch doctor` for a Salesforce org: one line per thing the tenant needs or gains.

Fails what stops calls (credentials, object permissions, the W1 field: present,
visible and editable, External ID + Unique, the daily budget under the reserve);
warns about what the rules lose without an optional feature or field (and, when the
tenant's policy uses rules v1.1's M9 or X1, without the standard fields those read:
Lead.IsConverted / ConvertedContactId, Account.Type, which field-level security may
hide). Every line that is not ok carries its fix. Describes the org afresh, so the tenant's cached
capabilities are renewed on the way. Costs a token request and three or four API
calls (a composite of describes, a Tooling query, /limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.crm.readiness import Check, Status
from adapters.crm.salesforce.capabilities import Capabilities, OrgCapabilities
from adapters.crm.salesforce.client import SalesforceClient
from adapters.crm.salesforce.mapping import SalesforceSettings
from adapters.crm.salesforce.setup import find_activity_field
from adapters.errors import ExternalError
from worker.core.model import Policy

READ_ONLY = ("Contact", "Lead", "Account", "Opportunity", "OpportunityContactRole", "User")
WRITTEN = ("Task", "Event")


@dataclass(frozen=True)
class OptionalField:
    """An optional field: where it lives, the tenant setting naming it, and what the rules lose without it."""

    sobject: str
    name: str
    setting: str
    loses: str
    fix: str | None = None
    """For a standard field (hidden by field-level security, never absent): how to show it."""


def _security_fix(sobject: str, name: str, setting: str) -> str:
    return (
        f"Setup > Object Manager > {sobject} > Fields & Relationships > {name} > Set Field-Level Security: "
        f"tick Visible for the integration user's profile (or grant read in a permission set assigned to it), "
        f"or leave {setting} off"
    )


def policy_fields(policy: Policy) -> list[OptionalField]:
    """The standard fields rules v1.1 read, only when the tenant's policy uses the rule."""
    out = []
    if policy.skip_converted_leads:
        setting = "policy.skip_converted_leads"
        out += [
            OptionalField(
                "Lead",
                "IsConverted",
                setting,
                "M9: converted leads stay filtered out of the Lead queries; none is followed to its contact",
                _security_fix("Lead", "IsConverted", setting),
            ),
            OptionalField(
                "Lead",
                "ConvertedContactId",
                setting,
                "M9: a converted lead is skipped, never followed to the contact it became",
                _security_fix("Lead", "ConvertedContactId", setting),
            ),
        ]
    if policy.excluded_account_types:
        setting = "policy.excluded_account_types"
        out.append(
            OptionalField(
                "Account",
                "Type",
                setting,
                "X1: no account's type is read, so excluded_account_types excludes no account",
                _security_fix("Account", "Type", setting),
            )
        )
    return out


def optional_fields(settings: SalesforceSettings, policy: Policy | None = None) -> list[OptionalField]:
    """The optional fields of the tenant's settings, then those its policy's v1.1 rules read."""
    out = []
    for name in settings.extra_email_fields:
        for sobject in ("Contact", "Lead"):
            out.append(
                OptionalField(
                    sobject,
                    name,
                    "extra_email_fields",
                    f"M1/M4 match a participant's email against {sobject}.Email and the other extra email fields only",
                )
            )
    if settings.account_domain_field:
        out.append(
            OptionalField(
                "Account",
                settings.account_domain_field,
                "account_domain_field",
                "M6 and V2 compare domains with Account.Website alone",
            )
        )
    out.append(
        OptionalField(
            "Task",
            settings.task_call_id_field,
            "task_call_id_field",
            "A1 finds a Task by callmatch's own id only, not by the telephony integration's call id",
        )
    )
    out.append(
        OptionalField(
            "Event",
            settings.event_call_id_field,
            "event_call_id_field",
            "A1 finds an Event by its time window and shared emails only (meetings), never by call id",
        )
    )
    if settings.attendee_emails_field:
        out.append(
            OptionalField(
                "Event",
                settings.attendee_emails_field,
                "attendee_emails_field",
                "A1 compares the participants' emails with the Event's invitees (EventRelation) only",
            )
        )
    if policy is not None:
        out += policy_fields(policy)
    return out


@dataclass
class SalesforceDoctor:
    client: SalesforceClient
    settings: SalesforceSettings
    capabilities: Capabilities
    reserve_fraction: float = 0.1
    policy: Policy | None = None

    @property
    def field(self) -> str:
        return self.settings.external_id_field

    @property
    def setup_command(self) -> str:
        return f"callmatch setup --tenant {self.client.tenant}"

    def run(self) -> list[Check]:
        credentials = self._credentials()
        if credentials.status is Status.FAIL:
            return [credentials]
        checks = [credentials]
        try:
            caps = self.capabilities.refresh()
        except ExternalError as error:
            return [
                *checks,
                Check(
                    "describe",
                    Status.FAIL,
                    f"the org's describe was refused: {error}",
                    "check the integration user is active and has API Enabled",
                ),
            ]
        checks += [self._object(caps, name) for name in (*READ_ONLY, *WRITTEN)]
        tooling = self._tooling_field()
        checks += [self._required_field(caps, sobject, tooling) for sobject in WRITTEN]
        checks.append(self._external_id(caps, tooling))
        checks += self._features(caps)
        checks += [self._optional(caps, optional) for optional in optional_fields(self.settings, self.policy)]
        checks.append(self._budget())
        return checks

    # --- lines ----------------------------------------------------------------------------------

    def _credentials(self) -> Check:
        if self.client.credentials is None:
            try:
                self.client.rest("limits", "limits")
            except ExternalError as error:
                return Check(
                    "credentials",
                    Status.FAIL,
                    f"the access token is refused: {error}",
                    "configure crm.credentials (client_id, client_secret, refresh_token); see docs/salesforce.md",
                )
            return Check(
                "credentials",
                Status.WARN,
                "an access token works, but no refresh token is configured: it will expire",
                "configure crm.credentials (client_id, client_secret, refresh_token); see docs/salesforce.md",
            )
        try:
            self.client.refresh()
        except ExternalError as error:
            return Check(
                "credentials",
                Status.FAIL,
                f"the OAuth refresh failed: {error}",
                "get a new refresh token for the connected app (docs/salesforce.md, 'Getting a refresh "
                "token') and set crm.credentials.refresh_token; check crm.login_url (test.salesforce.com "
                "for a sandbox)",
            )
        return Check("credentials", Status.OK, "an OAuth refresh works")

    def _object(self, caps: OrgCapabilities, sobject: str) -> Check:
        wanted = ("read", "create", "edit") if sobject in WRITTEN else ("read",)
        missing = [p for p in wanted if not caps.can(sobject, p)]
        name = f"object {sobject}"
        if not missing:
            return Check(name, Status.OK, ", ".join(wanted))
        absent = not caps.has_object(sobject)
        detail = f"the API user lacks {', '.join(missing)}" + (
            " (the object is not visible at all)" if absent else ""
        )
        return Check(
            name,
            Status.FAIL,
            detail,
            f"grant {', '.join(p.capitalize() for p in missing)} on {sobject} to the integration user's profile "
            f"or a permission set assigned to it (Setup > Permission Sets > ... > Object Settings > {sobject})",
        )

    def _tooling_field(self) -> dict[str, Any] | Exception | None:
        """The field's Tooling record with its Metadata; None: not in the org; an error: may not look."""
        try:
            found: dict[str, Any] | None = find_activity_field(self.client, self.field)
        except ExternalError as error:
            return error
        return found

    def _required_field(
        self, caps: OrgCapabilities, sobject: str, tooling: dict[str, Any] | Exception | None
    ) -> Check:
        name = f"field {sobject}.{self.field}"
        found = caps.field(sobject, self.field)
        fix = f"{self.setup_command} (creates Activity.{self.field} and grants read and edit through the Callmatch permission set)"
        if found is None:
            if isinstance(tooling, Exception):
                detail = "absent, or hidden from the API user by field-level security: W1 cannot write"
            elif tooling is None:
                detail = "absent from the org: W1 (one activity per call) cannot write"
            else:
                detail = "exists, but field-level security hides it from the API user: W1 cannot write"
            return Check(name, Status.FAIL, detail, fix)
        if not (found.createable and found.updateable):
            return Check(name, Status.FAIL, "visible but read-only for the API user: W1 cannot write", fix)
        return Check(name, Status.OK, "visible, readable and editable")

    def _external_id(self, caps: OrgCapabilities, tooling: dict[str, Any] | Exception | None) -> Check:
        name = f"external id Activity.{self.field}"
        fix = f"{self.setup_command} (makes it External ID + Unique)"
        described = caps.field("Task", self.field) or caps.field("Event", self.field)
        if described is not None:
            external_id, unique = described.external_id, described.unique
        elif isinstance(tooling, dict):
            metadata = tooling.get("Metadata") or {}
            external_id, unique = bool(metadata.get("externalId")), bool(metadata.get("unique"))
        elif tooling is None:
            return Check(
                name,
                Status.FAIL,
                "absent from the org",
                f"{self.setup_command} (creates it External ID + Unique)",
            )
        else:
            return Check(
                name, Status.FAIL, "cannot tell: the field is absent or hidden from the API user", fix
            )
        if external_id and unique:
            return Check(name, Status.OK, "External ID, Unique")
        if not external_id:
            return Check(name, Status.FAIL, "not an External ID: the W1 upsert by call id is refused", fix)
        return Check(
            name,
            Status.FAIL,
            "External ID but not Unique: nothing stops two activities carrying one call id (W1); "
            "an upsert matching both answers 300 and the call becomes a dead letter",
            fix,
        )

    def _features(self, caps: OrgCapabilities) -> list[Check]:
        shared = (
            Check(
                "feature Shared Activities",
                Status.OK,
                "on: a call's other contacts are related to its activity (TaskRelation / EventRelation rows)",
            )
            if caps.shared_activities
            else Check(
                "feature Shared Activities",
                Status.WARN,
                "off: WhoId holds the first contact only; a call's other contacts are not related to its "
                "activity (W2), and an existing activity's other contacts are not read (A5, A6)",
                "optional: Setup > Activity Settings > 'Allow Users to Relate Multiple Contacts to Tasks and "
                f"Events' (cannot be turned off again), then `callmatch doctor --tenant {self.client.tenant}`",
            )
        )
        multiple = (
            Check(
                "feature Contacts to Multiple Accounts",
                Status.OK,
                "on: every account a contact is related to votes (V1) and brings its opportunities (C1)",
            )
            if caps.contacts_to_multiple_accounts
            else Check(
                "feature Contacts to Multiple Accounts",
                Status.WARN,
                "off: a contact's account is Contact.AccountId alone; its other accounts neither vote (V1) "
                "nor bring opportunities (C1)",
                "optional: Setup > Account Settings > 'Allow users to relate a contact to multiple accounts'",
            )
        )
        return [shared, multiple]

    def _optional(self, caps: OrgCapabilities, optional: OptionalField) -> Check:
        name = f"field {optional.sobject}.{optional.name}"
        setting = optional.setting if optional.setting.startswith("policy.") else f"crm.{optional.setting}"
        if caps.has_field(optional.sobject, optional.name):
            return Check(name, Status.OK, f"present ({setting})")
        if optional.fix is not None:
            return Check(name, Status.WARN, f"hidden from the API user: {optional.loses}", optional.fix)
        return Check(
            name,
            Status.WARN,
            f"absent or hidden: {optional.loses}",
            f"optional: create it (Setup > Object Manager > {optional.sobject} > Fields & Relationships > New) "
            f"and let the integration user read it, or set crm.{optional.setting} to the field your org uses",
        )

    def _budget(self) -> Check:
        name = "daily API budget"
        try:
            limits = self.client.rest("limits", "limits")
        except ExternalError as error:
            return Check(
                name,
                Status.WARN,
                f"/limits was refused: {error}",
                "give the integration user 'View Setup and Configuration'",
            )
        daily = (limits or {}).get("DailyApiRequests") or {}
        try:
            most, remaining = int(daily["Max"]), int(daily["Remaining"])
        except (KeyError, TypeError, ValueError):
            return Check(name, Status.WARN, "/limits holds no DailyApiRequests", None)
        reserve = max(1, int(most * self.reserve_fraction))
        detail = f"{remaining:,} of {most:,} calls left in the last 24 hours; callmatch stops at the reserve of {reserve:,} (crm.reserve_fraction {self.reserve_fraction:g})"
        fix = "wait for the 24-hour window to roll, buy more API calls, or lower crm.reserve_fraction"
        if remaining < reserve:
            return Check(name, Status.FAIL, detail, fix)
        if remaining < 2 * reserve:
            return Check(name, Status.WARN, detail, fix)
        return Check(name, Status.OK, detail)


def run_doctor(
    client: SalesforceClient,
    settings: SalesforceSettings,
    capabilities: Capabilities,
    reserve_fraction: float = 0.1,
    policy: Policy | None = None,
) -> list[Check]:
    return SalesforceDoctor(client, settings, capabilities, reserve_fraction, policy).run()
