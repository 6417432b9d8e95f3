"""Hypothesis strategies for the ``signals_crm`` domain, for this project's tests and yours.

Every strategy takes keyword-only options and returns a ``SearchStrategy``; they compose::

    from hypothesis import given
    from signals_crm.testing import strategies as sst

    @given(sst.conversations(closed=True), sst.sync_configs())
    def test_something(conversation, config): ...

Emails are drawn from a small pool by default, so that generated CRM states and conversations
collide (same person, different case or spaces) often enough to exercise matching.

Strategies for user input live here too: ``settings()`` draws valid
:class:`~signals_crm.settings.IntegrationSettings` (and its parts: ``field_mapping_settings``,
``segment_settings``, ...), ``webhook_payloads()`` draws Signals webhook payloads as the
reference's emulator checklist describes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta

import attrs
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from signals_crm.core.config import (
    ActivityTemplate,
    Condition,
    ConditionGroup,
    ContactPolicy,
    Criteria,
    DomainList,
    FallbackCriteria,
    FieldMapping,
    FieldMappings,
    Operator,
    OwnershipConfig,
    OwnershipRule,
    Segment,
    SyncConfig,
    UserMapEntry,
    UserMapping,
)
from signals_crm.core.model import (
    AccountRecord,
    ActivityKind,
    Company,
    Conversation,
    ConversationStatus,
    CustomActivity,
    Meeting,
    Participants,
    PersonKind,
    PersonRecord,
    Role,
    SignalsUser,
    Traffic,
    Visitor,
    normalize_email,
)
from signals_crm.testing.strategies_settings import (
    condition_group_settings,
    condition_settings,
    crm_ids,
    delays,
    field_mapping_settings,
    field_names,
    segment_settings,
    settings,
    signals_emails,
    signals_fields,
    signals_user_ids,
    user_mapping_settings,
)
from signals_crm.testing.strategies_webhook import (
    WEBHOOK_EVENTS,
    phones,
    transcripts,
    visitor_emails,
    webhook_contacts,
    webhook_meeting_events,
    webhook_payloads,
    webhook_user_emails,
)

__all__ = [  # noqa: RUF022  # grouped: domain values, then user input (re-exported)
    "CUSTOM_KINDS",
    "EMAIL_POOL",
    "SIGNALS_USERS",
    "account_records",
    "activity_templates",
    "companies",
    "conversations",
    "crm_people",
    "custom_activities",
    "email_variants",
    "emails",
    "field_mappings",
    "lead_scores",
    "ownership_configs",
    "participants",
    "person_ids",
    "person_records",
    "segments",
    "signals_users",
    "sync_configs",
    "user_mappings",
    "visitors",
    # Settings strategies, from the strategies_settings module.
    "condition_group_settings",
    "condition_settings",
    "crm_ids",
    "delays",
    "field_mapping_settings",
    "field_names",
    "segment_settings",
    "settings",
    "signals_emails",
    "signals_fields",
    "signals_user_ids",
    "user_mapping_settings",
    # Webhook payload strategies, from the strategies_webhook module.
    "WEBHOOK_EVENTS",
    "phones",
    "transcripts",
    "visitor_emails",
    "webhook_contacts",
    "webhook_meeting_events",
    "webhook_payloads",
    "webhook_user_emails",
]

EMAIL_POOL: tuple[str, ...] = (
    "ada@example.com",
    "bob.smith@acme.test",
    "carol+chat@northwind.test",
    "dan@brightfield-labs.test",
    "eve.o'neil@contoso.test",
    "frank@example.org",
)
"""The default emails: few, so CRM records and visitors often share one."""

SIGNALS_USERS: tuple[SignalsUser, ...] = (
    SignalsUser(id="u1", email="sally@vendor.test"),
    SignalsUser(id="u2", email="bob@vendor.test"),
    SignalsUser(id="u3", email="jill@vendor.test"),
    SignalsUser(id="u4", email="ken@vendor.test"),
)
"""The default Signals users participants are drawn from."""

CRM_USER_IDS: tuple[str, ...] = ("005A", "005B", "005C", "005D", "005E")

BASE_TIME = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

SOURCE_FIELDS: tuple[str, ...] = (
    "contact.first_name",
    "contact.last_name",
    "contact.phone",
    "contact.description",
    "chat.traffic_source",
    "chat.referrer",
    "company.name",
    "company.industry",
)
TARGET_FIELDS: tuple[str, ...] = (
    "FirstName",
    "LastName",
    "Phone",
    "Description",
    "LeadSource",
    "Website",
    "Company",
    "Industry",
)

_short_text = st.text(alphabet="abcdefghij KLMNO-'", min_size=0, max_size=12)


def lead_scores() -> st.SearchStrategy[int | None]:
    """0-3 stars, or ``None`` (unscored)."""
    return st.one_of(st.none(), st.integers(min_value=0, max_value=3))


def email_variants(email: str) -> st.SearchStrategy[str]:
    """``email`` with its case changed and spaces around it: the same person to the CRM."""
    return st.tuples(
        st.sampled_from(["", " ", "  ", "\t"]),
        st.lists(st.booleans(), min_size=len(email), max_size=len(email)),
        st.sampled_from(["", " ", "\n"]),
    ).map(
        lambda parts: (
            parts[0]
            + "".join(c.upper() if up else c.lower() for c, up in zip(email, parts[1], strict=True))
            + parts[2]
        )
    )


def emails(*, pool: Sequence[str] = EMAIL_POOL, vary: bool = True) -> st.SearchStrategy[str]:
    """Valid emails from ``pool``, with case/space variants when ``vary``."""
    base = st.sampled_from(list(pool))
    return base.flatmap(email_variants) if vary else base


def signals_users(
    *, users: Sequence[SignalsUser] = SIGNALS_USERS
) -> st.SearchStrategy[SignalsUser]:
    return st.sampled_from(list(users))


def participants(
    *, users: Sequence[SignalsUser] = SIGNALS_USERS
) -> st.SearchStrategy[Participants]:
    """Meeting scheduler, last routed and closer, each present or not."""
    maybe = st.one_of(st.none(), signals_users(users=users))
    return st.builds(Participants, meeting_scheduler=maybe, last_routed=maybe, closer=maybe)


def visitors(*, email: st.SearchStrategy[str | None] | None = None) -> st.SearchStrategy[Visitor]:
    """Signals contacts; ``email`` defaults to the pool (sometimes missing or invalid)."""
    if email is None:
        email = st.one_of(
            emails(), emails(), emails(), st.none(), st.sampled_from(["not-an-email", "a@b", ""])
        )
    return st.builds(
        Visitor,
        email=email,
        first_name=st.one_of(st.none(), _short_text),
        last_name=st.one_of(st.none(), _short_text),
        phone=st.one_of(st.none(), st.sampled_from(["+1 (555) 123-4567", "020 7946 0321"])),
        description=st.one_of(st.none(), st.text(max_size=40)),
    )


def companies(*, domains: Sequence[str] | None = None) -> st.SearchStrategy[Company]:
    """Companies with a few attributes segments can test."""
    pool = list(domains or ("acme.test", "northwind.test", "contoso.test", "globex.test"))
    return st.builds(
        Company,
        domain=st.one_of(st.none(), st.sampled_from(pool)),
        name=st.one_of(st.none(), _short_text),
        attributes=st.fixed_dictionaries(
            {},
            optional={
                "industry": st.sampled_from(["Software", "Retail", "Banking"]),
                "employees": st.integers(min_value=1, max_value=100_000),
                "country": st.sampled_from(["US", "GB", "DE"]),
            },
        ),
    )


CUSTOM_KINDS: tuple[str, ...] = ("form_submitted", "file_shared", "call_logged")
"""Host-declared activity kind names the strategies use (``sync_configs(activity_kinds=True)``
declares some of them; ``conversations(custom_kinds=...)`` draws activities of any)."""


def activity_templates(
    *, kinds: Sequence[str] = CUSTOM_KINDS
) -> st.SearchStrategy[tuple[ActivityTemplate, ...]]:
    """Declarations of some of ``kinds``, each with templates naming activity data and
    Signals fields, and the roles that own its task."""

    def declare(name: str, roles: tuple[Role, ...]) -> ActivityTemplate:
        return ActivityTemplate(
            name,
            f"{name}: {{activity.title}}",
            "{contact.first_name} {{at}} {company.name}: {activity.note} ({activity.date})",
            roles,
        )

    one = st.tuples(
        st.sampled_from(list(kinds)), st.lists(st.sampled_from(list(Role)), unique=True)
    ).map(lambda pair: declare(pair[0], tuple(pair[1])))
    return st.lists(one, max_size=len(kinds), unique_by=lambda t: t.name).map(tuple)


def custom_activities(
    *, kinds: Sequence[str] = (*CUSTOM_KINDS, "never_declared"), max_size: int = 4
) -> st.SearchStrategy[tuple[CustomActivity, ...]]:
    """Activities of host-declared kinds (and one kind no strategy declares), unique by kind
    and id, with data the templates of :func:`activity_templates` name."""
    one = st.builds(
        CustomActivity,
        kind=st.sampled_from(list(kinds)),
        id=st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True),
        occurred_on=st.one_of(st.none(), st.dates(date(2026, 11, 1), date(2026, 11, 28))),
        data=st.fixed_dictionaries(
            {},
            optional={
                "title": st.text(min_size=1, max_size=20),
                "note": st.one_of(st.none(), st.text(max_size=30), st.integers(0, 99)),
            },
        ),
    )
    return st.lists(one, max_size=max_size, unique_by=lambda a: (a.kind, a.id)).map(tuple)


@st.composite
def conversations(
    draw: st.DrawFn,
    *,
    closed: bool | None = None,
    ids: st.SearchStrategy[str] | None = None,
    visitor: st.SearchStrategy[Visitor | None] | None = None,
    lead_score: st.SearchStrategy[int | None] | None = None,
    transcript_max: int = 80,
    custom_kinds: Sequence[str] = (),
) -> Conversation:
    """Conversations: open or closed, scored or not, with or without meeting and transcript;
    with activities of ``custom_kinds`` (host-declared kinds) when any are given."""
    is_closed = draw(st.booleans()) if closed is None else closed
    closed_at = (
        BASE_TIME + timedelta(minutes=draw(st.integers(min_value=0, max_value=60 * 24)))
        if is_closed
        else None
    )
    has_meeting = draw(st.booleans())
    meeting = (
        Meeting(
            id=str(draw(st.integers(min_value=1, max_value=99_999))),
            name=draw(st.sampled_from(["Product demo", "Intro call", None])),
            date=date(2026, 11, draw(st.integers(min_value=1, max_value=28))),
            duration_minutes=30,
        )
        if has_meeting
        else None
    )
    return Conversation(
        id=draw(ids if ids is not None else st.from_regex(r"c-[0-9a-f]{6}", fullmatch=True)),
        status=ConversationStatus.CLOSED if is_closed else ConversationStatus.OPEN,
        closed_at=closed_at,
        lead_score=draw(lead_score if lead_score is not None else lead_scores()),
        visitor=draw(visitor if visitor is not None else st.one_of(st.none(), visitors())),
        company=draw(st.one_of(st.none(), companies())),
        participants=draw(participants()),
        transcript=draw(st.one_of(st.none(), st.text(min_size=1, max_size=transcript_max))),
        meeting=meeting,
        traffic=Traffic(
            traffic_source=draw(st.one_of(st.none(), st.sampled_from(["bing", "google"]))),
            referrer=draw(st.one_of(st.none(), st.just("Direct"))),
        ),
        custom_activities=draw(custom_activities(kinds=custom_kinds)) if custom_kinds else (),
    )


def field_mappings(
    *, sources: Sequence[str] = SOURCE_FIELDS, targets: Sequence[str] = TARGET_FIELDS
) -> st.SearchStrategy[tuple[FieldMapping, ...]]:
    """A mapping set with distinct targets, some marked overwrite."""
    pairs = list(zip(sources, targets, strict=True))
    return st.lists(
        st.tuples(st.sampled_from(pairs), st.booleans()),
        max_size=len(pairs),
        unique_by=lambda item: item[0][1],
    ).map(lambda items: tuple(FieldMapping(s, t, overwrite=o) for (s, t), o in items))


def user_mappings(
    *, users: Sequence[SignalsUser] = SIGNALS_USERS, crm_ids: Sequence[str] = CRM_USER_IDS
) -> st.SearchStrategy[UserMapping]:
    """Some Signals users mapped (by id or email) to CRM users, some not."""

    @st.composite
    def build(draw: st.DrawFn) -> UserMapping:
        entries = []
        for index, user in enumerate(users):
            if not draw(st.booleans()):
                continue
            by = draw(st.sampled_from(["id", "email", "both"]))
            email = user.email if by in ("email", "both") else None
            if email is not None and draw(st.booleans()):
                email = email.upper()
            entries.append(
                UserMapEntry(
                    crm_user_id=crm_ids[index % len(crm_ids)],
                    signals_user_id=user.id if by in ("id", "both") else None,
                    signals_email=email,
                    licensed=draw(st.booleans()) or draw(st.booleans()),
                )
            )
        return UserMapping(tuple(entries))

    return build()


_CONDITIONS = st.one_of(
    st.builds(
        Condition,
        attribute=st.just("industry"),
        operator=st.sampled_from([Operator.EQ, Operator.NE]),
        value=st.sampled_from(["Software", "retail"]),
    ),
    st.builds(
        Condition,
        attribute=st.just("employees"),
        operator=st.sampled_from([Operator.GT, Operator.GTE, Operator.LT, Operator.LTE]),
        value=st.integers(min_value=0, max_value=100_000),
    ),
    st.builds(
        Condition,
        attribute=st.just("country"),
        operator=st.sampled_from([Operator.IN, Operator.NOT_IN]),
        value=st.lists(st.sampled_from(["US", "GB", "DE"]), min_size=1, unique=True).map(tuple),
    ),
    st.builds(
        Condition,
        attribute=st.sampled_from(["industry", "country", "missing"]),
        operator=st.sampled_from([Operator.IS_SET, Operator.IS_NOT_SET]),
    ),
)


def segments(*, name: str) -> st.SearchStrategy[Segment]:
    """A segment named ``name``: a condition group or a static domain list."""
    group = st.builds(
        ConditionGroup,
        conditions=st.lists(_CONDITIONS, min_size=1, max_size=3).map(tuple),
        match=st.sampled_from(["all", "any"]),
    )
    domains = st.builds(
        DomainList,
        domains=st.lists(
            st.sampled_from(["acme.test", "www.northwind.test", "CONTOSO.test"]), min_size=1
        ),
    )
    return st.builds(Segment, name=st.just(name), definition=st.one_of(group, domains))


OWNER_FIELDS: tuple[str, ...] = ("OwnerId", "SDR_Owner__c")


@st.composite
def ownership_configs(draw: st.DrawFn, *, max_rules: int = 3) -> OwnershipConfig:
    """Ordered rules over generated segments, optional fallback criteria and default owner."""
    count = draw(st.integers(min_value=0, max_value=max_rules))
    segs = {f"s{i}": draw(segments(name=f"s{i}")) for i in range(count)}
    user_ids = [u.id for u in SIGNALS_USERS if u.id]
    fallback_user = st.one_of(st.none(), st.sampled_from(user_ids))
    owner_fields = st.lists(st.sampled_from(OWNER_FIELDS), min_size=1, max_size=2, unique=True)
    rules = tuple(
        OwnershipRule(
            segment=f"s{i}",
            owner_fields=tuple(draw(owner_fields)),
            fallback_user=draw(fallback_user),
        )
        for i in range(count)
    )
    fallback = draw(
        st.one_of(
            st.none(),
            st.builds(
                FallbackCriteria,
                owner_fields=st.lists(st.sampled_from(OWNER_FIELDS), max_size=2, unique=True).map(
                    tuple
                ),
                fallback_user=fallback_user,
            ),
        )
    )
    return OwnershipConfig(
        rules=rules,
        segments=segs,
        fallback=fallback,
        default_account_owner=draw(fallback_user),
    )


@st.composite
def sync_configs(
    draw: st.DrawFn,
    *,
    enabled: bool | None = None,
    campaign: bool | None = None,
    ownership: bool = True,
    activity_kinds: bool = False,
) -> SyncConfig:
    """Integration configurations covering every setting the core reads.

    ``ownership=False`` leaves the account-ownership rules empty (faster to draw);
    ``activity_kinds=True`` declares some host activity kinds (:data:`CUSTOM_KINDS`), and the
    task events then choose among them too.
    """
    sources = draw(st.lists(st.sampled_from(list(Role)), unique=True, max_size=3))
    declared = draw(activity_templates()) if activity_kinds else ()
    events: list[ActivityKind | str] = [*ActivityKind, *(t.name for t in declared)]
    return SyncConfig(
        enabled=draw(st.booleans()) if enabled is None else enabled,
        criteria=draw(st.sampled_from(list(Criteria))),
        synchronization_delay=timedelta(minutes=draw(st.sampled_from([0, 5, 30, 60 * 24]))),
        task_events=frozenset(draw(st.lists(st.sampled_from(events), unique=True))),
        activity_kinds=declared,
        campaign_id=(
            draw(st.one_of(st.none(), st.just("701000000000001")))
            if campaign is None
            else ("701000000000001" if campaign else None)
        ),
        lead_owner_sources=tuple(sources),
        default_owner=draw(st.one_of(st.none(), st.just("005DEFAULT"))),
        field_mappings=FieldMappings(lead=draw(field_mappings()), contact=draw(field_mappings())),
        users=draw(user_mappings()),
        existing_contact=draw(st.sampled_from(list(ContactPolicy))),
        placeholders={"LastName": "[not provided]", "Company": "[not provided]"},
        ownership=draw(ownership_configs()) if ownership else OwnershipConfig(),
    )


def person_ids(
    *, kind: PersonKind, person_kind: PersonKind = PersonKind.LEAD
) -> st.SearchStrategy[str]:
    """Record ids shaped as the CRM makes them for ``kind``.

    A Salesforce-like CRM (``person_kind=LEAD``) prefixes Lead ids ``00Q`` and Contact ids
    ``003``, so a Lead and a Contact never share an id; a HubSpot-like CRM
    (``person_kind=CONTACT``) numbers its contacts.
    """
    if person_kind is PersonKind.CONTACT:
        return st.from_regex(r"[1-9][0-9]{0,8}", fullmatch=True)
    prefix = "00Q" if kind is PersonKind.LEAD else "003"
    return st.from_regex(rf"{prefix}[0-9A-Z]{{4}}", fullmatch=True)


@st.composite
def person_records(
    draw: st.DrawFn,
    *,
    email: st.SearchStrategy[str] | None = None,
    kinds: Sequence[PersonKind] | None = None,
    person_kind: PersonKind = PersonKind.LEAD,
) -> PersonRecord:
    """A CRM person record as a lookup returns it (fields keyed by the default targets).

    ``person_kind`` is the CRM's shape: ``LEAD`` (Salesforce-like: Leads, some converted, and
    separate Contacts) or ``CONTACT`` (HubSpot-like: contacts only, never converted).
    ``kinds`` narrows the kinds drawn; a Lead in a HubSpot-like CRM is refused.
    """
    possible = (PersonKind.CONTACT,) if person_kind is PersonKind.CONTACT else tuple(PersonKind)
    chosen = tuple(possible if kinds is None else kinds)
    if not chosen or not set(chosen) <= set(possible):
        raise InvalidArgument(
            f"kinds={kinds!r}: a CRM whose person object is {person_kind.value!r} "
            f"holds only {[k.value for k in possible]}"
        )
    kind = draw(st.sampled_from(chosen))
    converted = kind is PersonKind.LEAD and draw(st.integers(0, 4)) == 0
    return PersonRecord(
        id=draw(person_ids(kind=kind, person_kind=person_kind)),
        kind=kind,
        email=draw(email if email is not None else emails()),
        fields=draw(
            st.fixed_dictionaries(
                {}, optional={t: st.one_of(st.none(), _short_text) for t in TARGET_FIELDS}
            )
        ),
        is_converted=converted,
        converted_contact_id=draw(st.sampled_from([None, "003CONV"])) if converted else None,
        last_modified=draw(
            st.one_of(
                st.none(),
                st.integers(min_value=0, max_value=5).map(lambda d: BASE_TIME - timedelta(days=d)),
            )
        ),
    )


@st.composite
def crm_people(
    draw: st.DrawFn,
    *,
    person_kind: PersonKind = PersonKind.LEAD,
    email: st.SearchStrategy[str] | None = None,
    kinds: Sequence[PersonKind] | None = None,
    min_size: int = 0,
    max_size: int = 6,
) -> tuple[PersonRecord, ...]:
    """The person records of a CRM state that can exist, for ``run_with_state(people=...)``.

    What holds in every state drawn (pinned by ``tests/properties/test_strategies.py``):

    1. Ids are unique, and shaped for their kind (see ``person_ids``).
    2. A HubSpot-like CRM (``person_kind=CONTACT``) holds contacts only, never converted, and
       no two with the same email (compared as the CRM does: trimmed, case-insensitively).
    3. A Salesforce-like CRM (``person_kind=LEAD``) may hold several Leads and Contacts with
       one email; only Leads are converted, and a converted Lead's contact is a Contact of the
       same state (or unknown, ``None``).
    """
    hubspot = person_kind is PersonKind.CONTACT
    unique_by: tuple[Callable[[PersonRecord], object], ...] = (lambda r: r.id,)
    if hubspot:
        unique_by = (lambda r: r.id, lambda r: normalize_email(r.email or ""))
    records = draw(
        st.lists(
            person_records(email=email, kinds=kinds, person_kind=person_kind),
            min_size=min_size,
            max_size=max_size,
            unique_by=unique_by,
        )
    )
    contacts = [r.id for r in records if r.kind is PersonKind.CONTACT]
    return tuple(
        attrs.evolve(
            record,
            converted_contact_id=draw(st.one_of(st.none(), st.sampled_from(contacts)))
            if contacts
            else None,
        )
        if record.is_converted
        else record
        for record in records
    )


def account_records(*, domain: str) -> st.SearchStrategy[AccountRecord]:
    """A CRM account for ``domain`` whose owner fields hold known or unknown CRM users."""
    owner = st.one_of(st.none(), st.sampled_from([*CRM_USER_IDS, "005UNKNOWN"]))
    return st.builds(
        AccountRecord,
        id=st.from_regex(r"001[0-9A-Z]{4}", fullmatch=True),
        domain=st.just(domain),
        fields=st.fixed_dictionaries(
            dict.fromkeys(OWNER_FIELDS, owner),
            optional={"Industry": st.sampled_from(["Software", "Retail"])},
        ),
    )
