"""Reading scenario-v1 documents into model values, with errors that name the field.

The document is declared once, as pydantic models (`ScenarioDocument`), from which
`docs/schemas/scenario-v1.schema.json` is generated for editors. The models are
strict where the contract is (types, enums, dates with offsets, known time zones
and regions) and lenient where it says so (unknown keys kept and reported as
warnings, missing policy keys, absent or null lists). They convert into the plain
dataclasses of `worker.core.model`, which the engine reads. Fields are declared in the
order the reader always checked them, so a document with several errors still
names the same first one (`worker.config.documents.first_error`).
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError, from_json

from worker.config.documents import NON_BLANK, InvalidDocument, refuse, type_name, unknown_keys, validate
from worker.core.model import (
    LOCKABLE_FIELDS,
    Account,
    Activity,
    ActivityType,
    Ambiguity,
    Call,
    CallKind,
    Contact,
    ContactRole,
    CrmSlice,
    Direction,
    DomainMatch,
    Lead,
    Opportunity,
    OwnerMode,
    Person,
    Policy,
    Preference,
    Previous,
    Removed,
    Scenario,
    Strategy,
    User,
    Windows,
)

SUPPORTED_VERSION = 1
DEFAULT_POLICY = Policy()
"""Every key at its default (immutable, so one is shared)."""
CRM_KINDS = ("salesforce", "hubspot", "generic")
SCHEMA_ID = "https://callmatch.dev/schemas/scenario-v1.schema.json"

BaseModelT = TypeVar("BaseModelT", bound=BaseModel)


class ScenarioError(ValueError):
    """A document that is not a valid scenario; `path` is the offending field (`call.started_at`)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


# --- value checks: each raises our reason; a null is "absent" (the default applies) ---


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise refuse(f"expected a string, got {type_name(value)}")
    return value


def _id(value: object) -> str:
    """A required string: null is missing, blank is empty."""
    if value is None:
        raise refuse("missing")
    if not _string(value).strip():
        raise refuse("must not be empty")
    return value  # type: ignore[return-value]  # _string checked it


def _moved(exc: PydanticCustomError, *at: str | int) -> PydanticCustomError:
    """Our error raised by a model validator, placed at the field it is about."""
    return refuse(str((exc.context or {})["reason"]), at)


def parse_datetime(value: str, path: str) -> dt.datetime:
    """ISO-8601 with an offset, returned in UTC; a naive time is refused, not guessed."""
    try:
        return _datetime_value(value)
    except PydanticCustomError as exc:
        raise ScenarioError(path, str((exc.context or {})["reason"])) from None


def _datetime_value(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise refuse("not an ISO-8601 date-time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise refuse("not an ISO-8601 date-time with an offset (add Z or +hh:mm)")
    return parsed.astimezone(dt.UTC)


def _required_datetime(value: object) -> dt.datetime:
    return _datetime_value(_id(value))


def _optional_datetime(value: object) -> dt.datetime | None:
    if value is None:
        return None
    return _datetime_value(_string(value))


def _optional_date(value: object) -> dt.date | None:
    if value is None:
        return None
    text = _string(value)
    try:
        if len(text) != 10:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise refuse("not a YYYY-MM-DD date") from None


def _within(minimum: int, maximum: int) -> Callable[[int | None], int | None]:
    def check(value: int | None) -> int | None:
        if value is not None and not minimum <= value <= maximum:
            raise refuse(f"must be between {minimum} and {maximum}, got {value}")
        return value

    return check


def _at_least_zero(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise refuse(f"must be at least 0, got {value}")
    return value


def _crm_kind(value: object) -> str | None:
    if value is None or not _string(value):
        return None
    if value not in CRM_KINDS:
        raise refuse(f"unknown value {value!r} (expected one of: {', '.join(CRM_KINDS)})")
    return str(value)


def _region(value: object) -> str | None:
    if value is None or not _string(value):
        return None
    region = str(value).strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise refuse(f"unknown region {region!r} (an ISO 3166 code such as US, FR)")
    return region


@lru_cache(maxsize=512)
def _known_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _timezone(value: object) -> str | None:
    if value is None or not _string(value):
        return None
    if not _known_zone(str(value)):
        raise refuse(f"unknown time zone {value!r} (an IANA name such as Europe/Paris)")
    return str(value)


def _count(maximum: int | None) -> Any:
    """Schema bounds of a whole number checked by `_within`."""
    bounds: JsonDict = {"minimum": 0} if maximum is None else {"minimum": 0, "maximum": maximum}
    return Field(json_schema_extra=bounds)


Days = Annotated[int | None, Strict(), AfterValidator(_within(0, 36500)), _count(36500)]
Minutes = Annotated[int | None, Strict(), AfterValidator(_within(0, 10080)), _count(10080)]
Count = Annotated[int | None, Strict(), AfterValidator(_at_least_zero), _count(None)]
Id = Annotated[str, Strict(), StringConstraints(pattern=NON_BLANK)]
Text = Annotated[str | None, Strict()]
Texts = Annotated[list[str] | None, Strict()]
Flag = Annotated[bool | None, Strict()]
Instant = Annotated[
    dt.datetime,
    PlainValidator(_required_datetime),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
MaybeInstant = Annotated[
    dt.datetime | None,
    PlainValidator(_optional_datetime),
    WithJsonSchema({"type": ["string", "null"], "format": "date-time"}),
]
MaybeDate = Annotated[
    dt.date | None,
    PlainValidator(_optional_date),
    WithJsonSchema({"type": ["string", "null"], "format": "date"}),
]


KindChoice = CallKind | None
DirectionChoice = Direction | None
StrategyChoice = Strategy | None
OwnerChoice = OwnerMode | None
ActivityTypeChoice = ActivityType | None


class _Lenient(BaseModel):
    """Unknown keys are kept (so `decide` can name them) and otherwise ignored, as scenario-v1 says."""

    model_config = ConfigDict(extra="allow", frozen=True)


# --- policy ---


class WindowsDocument(_Lenient):
    """`policy.windows`: the day windows of the timeline strategy (S1.2, S1.3, S1.5)."""

    created_after_days: Days = None
    closed_before_days: Days = None
    closed_before_max_days: Days = None

    @model_validator(mode="after")
    def _max_not_below_closed_before(self) -> WindowsDocument:
        """Checked with the defaults in place, once the three are read (a default maximum counts too)."""
        windows = self.to_windows()
        if windows.closed_before_max_days < windows.closed_before_days:
            raise refuse(
                f"must be at least closed_before_days ({windows.closed_before_days})",
                ("closed_before_max_days",),
            )
        return self

    def to_windows(self) -> Windows:
        base = Windows()
        return Windows(
            created_after_days=(
                base.created_after_days if self.created_after_days is None else self.created_after_days
            ),
            closed_before_days=(
                base.closed_before_days if self.closed_before_days is None else self.closed_before_days
            ),
            closed_before_max_days=(
                base.closed_before_max_days
                if self.closed_before_max_days is None
                else self.closed_before_max_days
            ),
        )


DomainMatchChoice = Literal["clean", "exact", "registrable"]
OnAmbiguityChoice = Literal["pick", "abstain"]


def _literal_choice(*allowed: str) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if value is None:
            return None
        if _string(value) not in allowed:
            raise refuse(f"unknown value {value!r} (expected one of: {', '.join(allowed)})")
        return str(value)

    return check


class PolicyDocument(_Lenient):
    """`policy`: the per-tenant switches of the rules; every key may be left out (its default applies)."""

    crm: Annotated[
        str | None,
        BeforeValidator(_crm_kind),
        WithJsonSchema({"enum": [*CRM_KINDS, None], "default": "generic"}),
    ] = None
    default_region: Annotated[
        str | None,
        BeforeValidator(_region),
        WithJsonSchema(
            {"type": ["string", "null"], "description": "ISO 3166 region, e.g. FR", "default": "US"}
        ),
    ] = None
    timezone: Annotated[
        str | None,
        BeforeValidator(_timezone),
        WithJsonSchema({"type": ["string", "null"], "description": "IANA time zone", "default": "UTC"}),
    ] = None
    free_mail_domains: Texts = None
    windows: WindowsDocument | None = None
    use_existing_activity: Flag = None
    match_by_domain: Flag = None
    opportunity_strategy: StrategyChoice = None
    owner: OwnerChoice = None
    use_contact_roles: Flag = None
    activity_match_minutes: Minutes = None
    # rules v1.1: accepted and carried, not yet read by the engine
    internal_phones: Texts = None
    internal_domains: Texts = None
    shared_phone_max_accounts: Count = None
    skip_converted_leads: Flag = None
    prefer_primary: Flag = None
    refresh_drops_stale: Flag = None
    domain_match: Annotated[
        DomainMatchChoice | None,
        BeforeValidator(_literal_choice("clean", "exact", "registrable")),
        WithJsonSchema({"enum": ["clean", "exact", "registrable", None], "default": "clean"}),
    ] = None
    excluded_account_types: Texts = None
    on_ambiguity: Annotated[
        OnAmbiguityChoice | None,
        BeforeValidator(_literal_choice("pick", "abstain")),
        WithJsonSchema({"enum": ["pick", "abstain", None], "default": "pick"}),
    ] = None
    use_preferences: Flag = None

    def to_policy(self) -> Policy:
        base = DEFAULT_POLICY
        return Policy(
            crm=self.crm or base.crm,
            default_region=self.default_region or base.default_region,
            timezone=self.timezone or base.timezone,
            use_existing_activity=(
                base.use_existing_activity
                if self.use_existing_activity is None
                else self.use_existing_activity
            ),
            match_by_domain=(base.match_by_domain if self.match_by_domain is None else self.match_by_domain),
            free_mail_domains=(
                tuple(sorted(set(self.free_mail_domains)))
                if self.free_mail_domains is not None
                else base.free_mail_domains
            ),
            opportunity_strategy=(
                base.opportunity_strategy if self.opportunity_strategy is None else self.opportunity_strategy
            ),
            owner=(base.owner if self.owner is None else self.owner),
            use_contact_roles=(
                base.use_contact_roles if self.use_contact_roles is None else self.use_contact_roles
            ),
            activity_match_minutes=(
                base.activity_match_minutes
                if self.activity_match_minutes is None
                else self.activity_match_minutes
            ),
            windows=self.windows.to_windows() if self.windows is not None else base.windows,
            internal_phones=tuple(self.internal_phones or ()),
            internal_domains=tuple(self.internal_domains or ()),
            shared_phone_max_accounts=(
                base.shared_phone_max_accounts
                if self.shared_phone_max_accounts is None
                else self.shared_phone_max_accounts
            ),
            skip_converted_leads=bool(self.skip_converted_leads),
            prefer_primary=bool(self.prefer_primary),
            refresh_drops_stale=bool(self.refresh_drops_stale),
            domain_match=base.domain_match if self.domain_match is None else DomainMatch(self.domain_match),
            excluded_account_types=tuple(self.excluded_account_types or ()),
            on_ambiguity=base.on_ambiguity if self.on_ambiguity is None else Ambiguity(self.on_ambiguity),
            use_preferences=base.use_preferences if self.use_preferences is None else self.use_preferences,
        )


# --- call ---


class PersonDocument(_Lenient):
    """A participant or the organizer, as the telephony or meeting provider saw them."""

    email: Text = None
    phone: Text = None
    name: Text = None

    def to_person(self) -> Person:
        return Person(email=self.email, phone=self.phone, name=self.name)


class CallDocument(_Lenient):
    """`call`: the ended call or meeting."""

    started_at: Instant
    id: Id
    kind: KindChoice = None
    ended_at: MaybeInstant = None
    organizer: PersonDocument | None = None
    participants: list[PersonDocument] | None = None
    direction: DirectionChoice = None
    title: Text = None

    @model_validator(mode="before")
    @classmethod
    def _organizer_is_an_object(cls, data: Any) -> Any:
        """The reader refused a non-object organizer right after `started_at`, before `id`."""
        if isinstance(data, dict):
            organizer = data.get("organizer")
            if organizer is not None and not isinstance(organizer, dict):
                try:
                    _required_datetime(data.get("started_at"))
                except PydanticCustomError as exc:
                    raise _moved(exc, "started_at") from None
                raise refuse(f"expected an object, got {type_name(organizer)}", ("organizer",))
        return data

    def to_call(self) -> Call:
        return Call(
            id=self.id,
            kind=(CallKind.CALL if self.kind is None else self.kind),
            started_at=self.started_at,
            ended_at=self.ended_at,
            organizer=self.organizer.to_person() if self.organizer is not None else Person(),
            participants=tuple([p.to_person() for p in self.participants]) if self.participants else (),
            direction=self.direction,
            title=self.title,
        )


# --- CRM slice ---


class UserDocument(_Lenient):
    """`crm.users[]`: the CRM's users (owners)."""

    id: Id
    email: Text = None

    def to_user(self) -> User:
        return User(id=self.id, email=self.email)


class AccountDocument(_Lenient):
    """`crm.accounts[]`."""

    id: Id
    name: Text = None
    domains: Texts = None
    type: Text = None  # rules v1.1 (X1)

    def to_account(self) -> Account:
        return Account(
            id=self.id,
            name=self.name,
            domains=tuple(self.domains) if self.domains else (),
            type=self.type,
        )


class ContactDocument(_Lenient):
    """`crm.contacts[]`."""

    id: Id
    email: Text = None
    emails: Texts = None
    phones: Texts = None
    account_ids: Texts = None

    def to_contact(self) -> Contact:
        return Contact(
            id=self.id,
            email=self.email,
            emails=(tuple(self.emails) if self.emails else ()),
            phones=(tuple(self.phones) if self.phones else ()),
            account_ids=(tuple(self.account_ids) if self.account_ids else ()),
        )


class LeadDocument(_Lenient):
    """`crm.leads[]`."""

    id: Id
    email: Text = None
    emails: Texts = None
    phones: Texts = None
    is_converted: Flag = None  # rules v1.1 (M9)
    converted_contact_id: Text = None  # rules v1.1 (M9)

    def to_lead(self) -> Lead:
        return Lead(
            id=self.id,
            email=self.email,
            emails=(tuple(self.emails) if self.emails else ()),
            phones=(tuple(self.phones) if self.phones else ()),
            is_converted=bool(self.is_converted),
            converted_contact_id=self.converted_contact_id,
        )


class ContactRoleDocument(_Lenient):
    """`crm.opportunities[].contacts[]`: a contact role (Salesforce) or deal association (HubSpot)."""

    id: Id
    is_primary: Flag = None

    def to_role(self) -> ContactRole:
        return ContactRole(id=self.id, is_primary=(False if self.is_primary is None else self.is_primary))


class OpportunityDocument(_Lenient):
    """`crm.opportunities[]` (a HubSpot deal)."""

    created_at: Instant
    id: Id
    account_id: Text = None
    owner_id: Text = None
    is_closed: Flag = None
    is_won: Flag = None
    updated_at: MaybeInstant = None
    close_date: MaybeDate = None
    contacts: list[ContactRoleDocument] | None = None

    def to_opportunity(self) -> Opportunity:
        return Opportunity(
            id=self.id,
            account_id=self.account_id,
            owner_id=self.owner_id,
            is_closed=(False if self.is_closed is None else self.is_closed),
            is_won=(False if self.is_won is None else self.is_won),
            created_at=self.created_at,
            updated_at=self.updated_at or self.created_at,
            close_date=self.close_date,
            contacts=tuple([role.to_role() for role in self.contacts]) if self.contacts else (),
        )


class ActivityDocument(_Lenient):
    """`crm.activities[]`: a task or event already in the CRM (rules A)."""

    id: Id
    type: ActivityTypeChoice = None
    call_id: Text = None
    start: MaybeInstant = None
    attendee_emails: Texts = None
    contact_ids: Texts = None
    account_id: Text = None
    opportunity_id: Text = None
    written_by_us: Flag = None

    def to_activity(self) -> Activity:
        return Activity(
            id=self.id,
            type=(ActivityType.TASK if self.type is None else self.type),
            call_id=self.call_id,
            start=self.start,
            attendee_emails=(tuple(self.attendee_emails) if self.attendee_emails else ()),
            contact_ids=(tuple(self.contact_ids) if self.contact_ids else ()),
            account_id=self.account_id,
            opportunity_id=self.opportunity_id,
            written_by_us=(False if self.written_by_us is None else self.written_by_us),
        )


class PreferenceDocument(_Lenient):
    """`crm.preferences[]` (rules v1.1, L1): what a person chose for a contact before."""

    contact_id: Id
    account_id: Text = None
    opportunity_id: Text = None
    set_at: MaybeInstant = None

    def to_preference(self) -> Preference:
        return Preference(
            contact_id=self.contact_id,
            account_id=self.account_id,
            opportunity_id=self.opportunity_id,
            set_at=self.set_at,
        )


RECORD_LISTS = ("users", "accounts", "contacts", "leads", "opportunities", "activities")


class CrmDocument(_Lenient):
    """`crm`: the slice of the CRM the rules may look at; every list may be empty or absent."""

    users: list[UserDocument] | None = None
    accounts: list[AccountDocument] | None = None
    contacts: list[ContactDocument] | None = None
    leads: list[LeadDocument] | None = None
    opportunities: list[OpportunityDocument] | None = None
    activities: list[ActivityDocument] | None = None
    preferences: list[PreferenceDocument] | None = None  # rules v1.1 (L1)

    @model_validator(mode="after")
    def _ids_are_unique(self) -> CrmDocument:
        for name in RECORD_LISTS:
            records = getattr(self, name)
            if not records or len({record.id for record in records}) == len(records):
                continue
            seen: set[str] = set()
            for index, record in enumerate(records):
                if record.id in seen:
                    raise refuse(f"duplicate id {record.id!r}", (name, index, "id"))
                seen.add(record.id)
        return self

    def to_crm(self) -> CrmSlice:
        return CrmSlice(
            users=tuple([r.to_user() for r in self.users]) if self.users else (),
            accounts=tuple([r.to_account() for r in self.accounts]) if self.accounts else (),
            contacts=tuple([r.to_contact() for r in self.contacts]) if self.contacts else (),
            leads=tuple([r.to_lead() for r in self.leads]) if self.leads else (),
            opportunities=tuple([r.to_opportunity() for r in self.opportunities])
            if self.opportunities
            else (),
            activities=tuple([r.to_activity() for r in self.activities]) if self.activities else (),
            preferences=tuple([r.to_preference() for r in self.preferences]) if self.preferences else (),
        )


# --- previous result (refresh) ---


class RemovedDocument(_Lenient):
    """`previous.removed[]` (rules v1.1, R6): a record a person unlinked."""

    type: Annotated[
        Literal["contact", "account", "opportunity"],
        BeforeValidator(_literal_choice("contact", "account", "opportunity")),
        WithJsonSchema({"enum": ["contact", "account", "opportunity"]}),
    ]
    id: Id


def _lockable(names: list[str] | None) -> list[str] | None:
    for index, name in enumerate(names or ()):
        if name not in LOCKABLE_FIELDS:
            raise refuse(f"unknown value {name!r} (expected any of: {', '.join(LOCKABLE_FIELDS)})", (index,))
    return names


class PreviousDocument(_Lenient):
    """`previous`: the stored result a refresh starts from (rules R), and what a person locked."""

    locked: Annotated[
        list[str] | None,
        Strict(),
        AfterValidator(_lockable),
        WithJsonSchema({"type": ["array", "null"], "items": {"enum": list(LOCKABLE_FIELDS)}}),
    ] = None
    contact_ids: Texts = None
    lead_ids: Texts = None
    account_id: Text = None
    opportunity_id: Text = None
    removed: list[RemovedDocument] | None = None  # rules v1.1 (R6)

    def to_previous(self) -> Previous:
        return Previous(
            contact_ids=(tuple(self.contact_ids) if self.contact_ids else ()),
            lead_ids=(tuple(self.lead_ids) if self.lead_ids else ()),
            account_id=self.account_id,
            opportunity_id=self.opportunity_id,
            locked=frozenset(self.locked or ()),
            removed=tuple([Removed(type=r.type, id=r.id) for r in self.removed]) if self.removed else (),
        )


# --- the document ---


class ScenarioDocument(_Lenient):
    """A scenario-v1 document (with the optional v1.1 keys): one call and the CRM slice its rules need."""

    model_config = ConfigDict(
        title="callmatch scenario v1",
        json_schema_extra={"$id": SCHEMA_ID},
    )

    schema_: Text = Field(
        default=None, alias="$schema", description="the JSON Schema an editor validates with"
    )
    version: Annotated[int | None, WithJsonSchema({"enum": [SUPPORTED_VERSION, None]})] = None
    policy: PolicyDocument | None = None
    call: CallDocument
    crm: CrmDocument | None = None
    previous: PreviousDocument | None = None

    @model_validator(mode="before")
    @classmethod
    def _version_then_call(cls, data: Any) -> Any:
        """An object of our version with a call, checked before its policy (the order errors were always named in)."""
        if not isinstance(data, dict):
            raise refuse(f"expected an object, got {type_name(data)}")
        version = data.get("version")
        if version is not None and (isinstance(version, bool) or version != SUPPORTED_VERSION):
            raise refuse(
                f"unsupported version {version!r} (this is scenario v{SUPPORTED_VERSION})", ("version",)
            )
        call = data.get("call")
        if call is None:
            raise refuse("missing", ("call",))
        if not isinstance(call, dict):
            raise refuse(f"expected an object, got {type_name(call)}", ("call",))
        return data

    def to_scenario(self) -> Scenario:
        return Scenario(
            policy=self.policy.to_policy() if self.policy is not None else DEFAULT_POLICY,
            call=self.call.to_call(),
            crm=self.crm.to_crm() if self.crm is not None else CrmSlice(),
            previous=self.previous.to_previous() if self.previous is not None else None,
        )

    def unknown_keys(self) -> list[str]:
        """Paths of the keys this document has that scenario-v1 does not know (ignored, worth a warning)."""
        return unknown_keys(self)


def _validate(model: type[BaseModelT], document: object, root: str = "") -> BaseModelT:
    try:
        return validate(model, document, root)
    except InvalidDocument as exc:
        raise ScenarioError(exc.path, exc.reason) from None


def parse_policy(document: object, path: str = "policy") -> Policy:
    """A scenario-v1 `policy` object alone (as tenants configure it); errors name `policy.<field>`."""
    return _validate(PolicyDocument, document, path).to_policy()


def parse_document(document: object) -> ScenarioDocument:
    """A decoded JSON document -> ScenarioDocument, or ScenarioError naming the first bad field."""
    return _validate(ScenarioDocument, document)


def parse_scenario(document: object) -> Scenario:
    """A decoded JSON document -> Scenario, or ScenarioError naming the first bad field."""
    return parse_document(document).to_scenario()


def loads_document(text: str | bytes) -> ScenarioDocument:
    """JSON text -> ScenarioDocument (its unknown keys still readable), or ScenarioError.

    pydantic-core's JSON reader is 40% faster than the standard library's and reads
    valid JSON alike; what it refuses (a lone surrogate escape, which scenario-v1 text
    may carry, or broken JSON) is read again by `json.loads`, whose reading and error
    wording the contract's users know.
    """
    try:
        return parse_document(from_json(text))
    except ScenarioError:
        raise
    except ValueError:  # not read by pydantic-core: json.loads reads it, or says why not
        pass
    try:
        document = json.loads(text)
    except UnicodeDecodeError:
        raise ScenarioError("(document)", "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            "(document)", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    return parse_document(document)


def loads_scenario(text: str | bytes) -> Scenario:
    return loads_document(text).to_scenario()
