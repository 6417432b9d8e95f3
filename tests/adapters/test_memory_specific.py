"""What the conformance kit does not pin about InMemoryCRM: counters, faults, clock, validation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from signals_crm.adapters import AsyncCRMAdapter, CRMAdapter
from signals_crm.core.crm import (
    CampaignMembershipWrite,
    MembershipByPerson,
    PersonByEmail,
    PersonUpdate,
    PersonWrite,
    TaskByMarker,
    TaskWrite,
)
from signals_crm.core.model import ActivityKind, FieldSchema, FieldType, FieldValue, PersonKind
from signals_crm.exceptions import (
    ConfigurationError,
    CRMAPIError,
    DuplicateRecordError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    TransportError,
)
from signals_crm.testing import InMemoryCRM, TickingClock

LEAD_FIELDS: dict[str, FieldValue] = {"LastName": "Doe", "Company": "Acme"}


def lead(email: str, **fields: FieldValue) -> PersonWrite:
    return PersonWrite(
        key=f"k-{email}", kind=PersonKind.LEAD, email=email, fields={**LEAD_FIELDS, **fields}
    )


def contact(email: str, **fields: FieldValue) -> PersonWrite:
    return PersonWrite(key=f"k-{email}", kind=PersonKind.CONTACT, email=email, fields=fields)


def task(person_id: str, marker: str, body: str = "hello") -> TaskWrite:
    return TaskWrite(
        key=f"t-{marker}",
        person_id=person_id,
        person_kind=PersonKind.LEAD,
        activity_kind=ActivityKind.CHAT_TRANSCRIPT,
        subject="Chat",
        body=body,
        marker=marker,
        activity_date=date(2024, 5, 1),
    )


# -- the Protocols ------------------------------------------------------------------------------


def test_implements_both_protocols() -> None:
    """One InMemoryCRM is both a blocking and an async adapter."""
    crm = InMemoryCRM()
    assert isinstance(crm, CRMAdapter)
    assert isinstance(crm, AsyncCRMAdapter)


def test_capabilities_per_flavour() -> None:
    """The Lead flavour is Salesforce-shaped, the contact flavour HubSpot-shaped."""
    sf = InMemoryCRM(person_kind=PersonKind.LEAD).capabilities
    hs = InMemoryCRM(person_kind=PersonKind.CONTACT, write_batch_size=10).capabilities
    assert (sf.person_object, sf.email_field, sf.separate_contacts) == ("Lead", "Email", True)
    assert (hs.person_object, hs.email_field, hs.separate_contacts) == ("contacts", "email", False)
    assert hs.write_batch_size == 10
    assert hs.account_object == "companies"


def test_batch_sizes_must_be_positive() -> None:
    """A batch size below one is refused with every problem named."""
    with pytest.raises(ConfigurationError) as raised:
        InMemoryCRM(lookup_batch_size=0, write_batch_size=-1)
    assert raised.value.paths == ("lookup_batch_size", "write_batch_size")


# -- call counting ------------------------------------------------------------------------------


def test_calls_count_each_method_call() -> None:
    """crm.calls counts calls per method, empty ones included."""
    crm = InMemoryCRM()
    crm.find_people(["a@example.com"])
    crm.find_people([])
    crm.create_people([lead("b@example.com")])
    assert crm.calls["find_people"] == 2
    assert crm.calls["create_people"] == 1
    assert crm.calls["update_people"] == 0


def test_round_trips_follow_batch_sizes() -> None:
    """crm.round_trips counts the requests a real CRM would need for the batch sizes."""
    crm = InMemoryCRM(lookup_batch_size=2, write_batch_size=3)
    crm.find_people([f"p{n}@example.com" for n in range(5)])
    crm.create_people([lead(f"w{n}@example.com") for n in range(7)])
    crm.list_users()
    crm.find_people([])
    assert crm.round_trips["find_people"] == 3
    assert crm.round_trips["create_people"] == 3
    assert crm.round_trips["list_users"] == 1


@pytest.mark.anyio
async def test_async_calls_count_under_the_blocking_name() -> None:
    """An awaited afind_people counts as a find_people call."""
    crm = InMemoryCRM()
    await crm.afind_people(["a@example.com"])
    await crm.aadd_to_campaign([])
    assert crm.calls == {"find_people": 1, "add_to_campaign": 1}


# -- faults -------------------------------------------------------------------------------------


def test_fail_next_raises_once_before_the_work() -> None:
    """fail_next raises the error on the next call only, and that call writes nothing."""
    crm = InMemoryCRM()
    crm.fail_next("create_people", RateLimitedError("slow down", retry_after=3))
    with pytest.raises(RateLimitedError):
        crm.create_people([lead("once@example.com")])
    assert crm.people_with_email("once@example.com") == []
    (result,) = crm.create_people([lead("once@example.com")])
    assert result.ok
    assert crm.calls["create_people"] == 2


def test_fail_next_after_lets_the_write_land() -> None:
    """With after=True the write lands and then the error is raised: an unknown outcome."""
    crm = InMemoryCRM()
    crm.fail_next("acreate_people", TransportError("read timeout", maybe_sent=True), after=True)
    with pytest.raises(TransportError):
        crm.create_people([lead("landed@example.com")])
    (landed,) = crm.people_with_email("landed@example.com")
    assert crm.reconcile([PersonByEmail("landed@example.com", PersonKind.LEAD)]) == [landed]


def test_fail_next_queues_faults_in_order() -> None:
    """Faults for one method are raised in the order they were queued."""
    crm = InMemoryCRM()
    crm.fail_next("list_users", TransportError("first"))
    crm.fail_next("list_users", CRMAPIError("second"))
    with pytest.raises(TransportError):
        crm.list_users()
    with pytest.raises(CRMAPIError, match="second"):
        crm.list_users()
    assert crm.list_users() == []


@pytest.mark.anyio
async def test_fail_next_applies_to_async_calls() -> None:
    """A fault queued under the blocking name is raised by the async twin."""
    crm = InMemoryCRM()
    crm.fail_next("reconcile", TransportError("boom"))
    with pytest.raises(TransportError):
        await crm.areconcile([])


def test_fail_next_rejects_unknown_methods_and_errors() -> None:
    """fail_next names its problem when the method or the error is not usable."""
    crm = InMemoryCRM()
    with pytest.raises(ConfigurationError, match="unknown method"):
        crm.fail_next("delete_everything", TransportError("x"))
    with pytest.raises(ConfigurationError, match="AdapterError"):
        crm.fail_next("describe", ValueError("x"))  # type: ignore[arg-type]


# -- clock and ids ------------------------------------------------------------------------------


def test_ticking_clock_is_deterministic() -> None:
    """TickingClock returns start, start + step, ... without reading real time."""
    clock = TickingClock(datetime(2030, 1, 1, tzinfo=UTC), timedelta(minutes=5))
    assert [clock(), clock()] == [
        datetime(2030, 1, 1, tzinfo=UTC),
        datetime(2030, 1, 1, 0, 5, tzinfo=UTC),
    ]


def test_injected_clock_stamps_last_modified_on_change_only() -> None:
    """Creates and changing updates take the injected clock's time; no-op updates do not."""
    times = iter(datetime(2031, 1, day, tzinfo=UTC) for day in range(1, 10))
    crm = InMemoryCRM(clock=lambda: next(times))
    (created,) = crm.create_people([lead("t@example.com", FirstName="Ann")])
    assert created.id is not None

    def modified() -> datetime | None:
        (records,) = crm.find_people(["t@example.com"])
        return records[0].last_modified

    assert modified() == datetime(2031, 1, 1, tzinfo=UTC)
    record_id = created.id

    def rename(first_name: str) -> None:
        crm.update_people(
            [PersonUpdate("u", record_id, PersonKind.LEAD, fields={"FirstName": first_name})]
        )

    rename("Ann")
    assert modified() == datetime(2031, 1, 1, tzinfo=UTC)
    rename("Bea")
    assert modified() == datetime(2031, 1, 2, tzinfo=UTC)


def test_ids_are_deterministic_per_flavour() -> None:
    """Ids are a prefix plus a counter: Salesforce-like 18 characters, HubSpot-like numbers."""
    sf = InMemoryCRM()
    (first,) = sf.create_people([lead("a@example.com")])
    assert first.id == "00Q000000000000001"
    assert sf.seed_user(email="u@example.com") == "005000000000000002"
    hs = InMemoryCRM(person_kind=PersonKind.CONTACT)
    (made,) = hs.create_people([contact("a@example.com")])
    assert made.id == "1001"
    assert InMemoryCRM().create_people([lead("a@example.com")])[0].id == first.id


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"Shoe_Size__c": "42"}, "INVALID_FIELD"),
        ({"IsConverted": True}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"FirstName": "x" * 41}, "STRING_TOO_LONG"),
        ({"LastName": None}, "REQUIRED_FIELD_MISSING"),
        ({"Company": "   "}, "REQUIRED_FIELD_MISSING"),
        ({"Status": "Carrier pigeon"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"NumberOfEmployees": "many"}, "INVALID_TYPE"),
        ({"HasOptedOutOfEmail": "yes"}, "INVALID_TYPE"),
        ({"OwnerId": "005999999999999999"}, "INVALID_CROSS_REFERENCE_KEY"),
    ],
)
def test_create_validation_errors(fields: dict[str, FieldValue], code: str) -> None:
    """Each schema violation fails its record alone with its own non-retryable code."""
    crm = InMemoryCRM()
    results = crm.create_people([lead("bad@example.com", **fields), lead("ok@example.com")])
    error = results[0].error
    assert isinstance(error, CRMAPIError)
    assert error.error_code == code
    assert error.retryable is False
    assert results[1].ok
    assert crm.people_with_email("bad@example.com") == []


def test_invalid_and_too_long_emails_are_refused() -> None:
    """An invalid email, or one longer than the Lead's 80 characters, fails its record."""
    crm = InMemoryCRM()
    long_email = f"{'a' * 64}@{'b' * 20}.example.com"
    results = crm.create_people([lead("nope@"), lead(long_email)])
    codes = [r.error.error_code if isinstance(r.error, CRMAPIError) else None for r in results]
    assert codes == ["INVALID_EMAIL_ADDRESS", "STRING_TOO_LONG"]


def test_inactive_owner_needs_an_admin() -> None:
    """An inactive owner is a PermissionDeniedError; an active one is stored as the owner."""
    crm = InMemoryCRM()
    gone = crm.seed_user(email="gone@example.com", active=False)
    here = crm.seed_user(email="here@example.com")
    refused, accepted = crm.create_people(
        [
            PersonWrite(
                key="a",
                kind=PersonKind.LEAD,
                email="a@example.com",
                fields=LEAD_FIELDS,
                owner_id=gone,
            ),
            PersonWrite(
                key="b",
                kind=PersonKind.LEAD,
                email="b@example.com",
                fields=LEAD_FIELDS,
                owner_id=here,
            ),
        ]
    )
    assert isinstance(refused.error, PermissionDeniedError)
    (records,) = crm.find_people(["b@example.com"])
    assert records[0].owner_id == here
    assert accepted.ok


def test_update_validation_and_clearing() -> None:
    """Updates validate like creates, may clear optional fields, never required ones."""
    crm = InMemoryCRM()
    record_id = crm.seed_person(
        kind=PersonKind.LEAD, email="u@example.com", fields={"Title": "CEO"}
    )
    cleared, refused = crm.update_people(
        [
            PersonUpdate(
                key="1", record_id=record_id, kind=PersonKind.LEAD, fields={"Title": None}
            ),
            PersonUpdate(
                key="2", record_id=record_id, kind=PersonKind.LEAD, fields={"LastName": ""}
            ),
        ]
    )
    assert cleared.ok
    assert cleared.created is False
    assert isinstance(refused.error, CRMAPIError)
    assert refused.error.error_code == "REQUIRED_FIELD_MISSING"
    assert "Title" not in (crm.person_fields(record_id) or {})


def test_converted_lead_cannot_be_updated() -> None:
    """A converted Lead refuses updates with CANNOT_UPDATE_CONVERTED_LEAD."""
    crm = InMemoryCRM()
    record_id = crm.seed_person(kind=PersonKind.LEAD, email="c@example.com", is_converted=True)
    (result,) = crm.update_people(
        [PersonUpdate(key="1", record_id=record_id, kind=PersonKind.LEAD, fields={"Title": "x"})]
    )
    assert isinstance(result.error, CRMAPIError)
    assert result.error.error_code == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_update_of_the_wrong_kind_is_not_found() -> None:
    """A Contact id updated as a Lead is not found: kinds are separate objects."""
    crm = InMemoryCRM()
    contact_id = crm.seed_person(kind=PersonKind.CONTACT, email="c@example.com")
    (result,) = crm.update_people(
        [PersonUpdate(key="1", record_id=contact_id, kind=PersonKind.LEAD, fields={"Title": "x"})]
    )
    assert isinstance(result.error, NotFoundError)


def test_add_field_extends_the_schema() -> None:
    """add_field makes a custom field describable and writable."""
    crm = InMemoryCRM()
    crm.add_field("lead", FieldSchema(name="Score__c", type=FieldType.INTEGER))
    assert crm.describe("LEAD").get("score__c") is not None
    (result,) = crm.create_people([lead("s@example.com", Score__c=3)])
    assert result.ok
    assert crm.person_fields(result.id or "") is not None
    assert (crm.person_fields(result.id or "") or {})["Score__c"] == 3


def test_describe_unknown_object_is_not_found() -> None:
    """describe of an object the CRM lacks raises NotFoundError (HTTP 404)."""
    with pytest.raises(NotFoundError) as raised:
        InMemoryCRM(person_kind=PersonKind.CONTACT).describe("Lead")
    assert raised.value.status_code == 404


# -- duplicates ---------------------------------------------------------------------------------


def test_lead_duplicates_only_when_detection_is_on() -> None:
    """Without detection a second Lead is created; with it the create names the first Lead."""
    crm = InMemoryCRM()
    (first,) = crm.create_people([lead("d@example.com")])
    (second,) = crm.create_people([lead("D@example.com ")])
    assert second.ok
    crm.enable_duplicate_detection()
    (third,) = crm.create_people([lead("d@example.com")])
    assert isinstance(third.error, DuplicateRecordError)
    assert third.error.error_code == "DUPLICATES_DETECTED"
    assert third.duplicate_of == (first.id, second.id)


def test_converted_leads_are_not_duplicates() -> None:
    """A converted Lead does not block a new Lead with its email."""
    crm = InMemoryCRM(duplicate_detection=True)
    crm.seed_person(kind=PersonKind.LEAD, email="x@example.com", is_converted=True)
    (result,) = crm.create_people([lead("x@example.com")])
    assert result.ok


def test_contact_flavour_emails_are_lowercase_and_unique() -> None:
    """HubSpot-like contacts store emails lower-cased and refuse a clash, on create or update."""
    crm = InMemoryCRM(person_kind=PersonKind.CONTACT)
    first, second = crm.create_people([contact(" Ann@Example.COM "), contact("bob@example.com")])
    assert (crm.person_fields(first.id or "") or {})["email"] == "ann@example.com"
    (clash,) = crm.create_people([contact("ANN@example.com")])
    assert isinstance(clash.error, DuplicateRecordError)
    assert clash.error.status_code == 409
    assert clash.duplicate_of == (first.id,)
    (moved,) = crm.update_people(
        [
            PersonUpdate(
                key="m",
                record_id=second.id or "",
                kind=PersonKind.CONTACT,
                fields={"email": "ann@example.com"},
            )
        ]
    )
    assert isinstance(moved.error, DuplicateRecordError)


def test_contact_flavour_has_no_leads() -> None:
    """The HubSpot-like flavour refuses Lead writes and Lead seeds."""
    crm = InMemoryCRM(person_kind=PersonKind.CONTACT)
    (result,) = crm.create_people([lead("l@example.com")])
    assert isinstance(result.error, CRMAPIError)
    with pytest.raises(ConfigurationError):
        crm.seed_person(kind=PersonKind.LEAD, email="l@example.com")


# -- accounts, tasks, campaigns, reconcile ------------------------------------------------------


def test_accounts_match_website_ignoring_scheme_and_www() -> None:
    """An account whose Website is https://www.acme.com/about matches acme.com and WWW.ACME.COM."""
    crm = InMemoryCRM()
    account = crm.seed_account(
        domain="acme-old.example", name="Acme", fields={"Website": "https://www.acme.com/about"}
    )
    found = crm.find_accounts(["acme.com", "WWW.ACME.COM", "acme-old.example", "", "other.com"])
    assert [[a.id for a in rs] for rs in found] == [[account], [account], [account], [], []]
    assert found[0][0].name == "Acme"


def test_task_body_limit_and_inspection() -> None:
    """A task body over the declared limit fails alone; stored tasks can be inspected."""
    crm = InMemoryCRM()
    person = crm.seed_person(kind=PersonKind.LEAD, email="t@example.com")
    limit = crm.capabilities.max_task_body_length or 0
    ok, too_long = crm.create_tasks([task(person, "m1"), task(person, "m2", "x" * (limit + 1))])
    assert ok.ok
    assert isinstance(too_long.error, CRMAPIError)
    assert too_long.error.error_code == "STRING_TOO_LONG"
    (stored,) = crm.tasks()
    assert (stored.marker, stored.person_id, stored.activity_date) == (
        "m1",
        person,
        date(2024, 5, 1),
    )


def test_membership_needs_campaign_and_person() -> None:
    """Adding to an unknown campaign, or an unknown person, fails that record with NotFound."""
    crm = InMemoryCRM()
    campaign = crm.seed_campaign(name="Spring")
    person = crm.seed_person(kind=PersonKind.LEAD, email="m@example.com")
    results = crm.add_to_campaign(
        [
            CampaignMembershipWrite(
                key="1", campaign_id="701nope", person_id=person, person_kind=PersonKind.LEAD
            ),
            CampaignMembershipWrite(
                key="2", campaign_id=campaign, person_id="00Qnope", person_kind=PersonKind.LEAD
            ),
            CampaignMembershipWrite(
                key="3", campaign_id=campaign, person_id=person, person_kind=PersonKind.LEAD
            ),
        ]
    )
    assert [type(r.error) for r in results] == [NotFoundError, NotFoundError, type(None)]
    assert [m.person_id for m in crm.memberships()] == [person]


def test_reconcile_person_prefers_most_recent_non_converted() -> None:
    """PersonByEmail answers the most recently modified non-converted record of that kind."""
    crm = InMemoryCRM()
    day = datetime(2024, 3, 1, tzinfo=UTC)
    crm.seed_person(kind=PersonKind.LEAD, email="r@example.com", last_modified=day)
    newer = crm.seed_person(
        kind=PersonKind.LEAD, email="r@example.com", last_modified=day + timedelta(days=1)
    )
    crm.seed_person(
        kind=PersonKind.LEAD,
        email="r@example.com",
        is_converted=True,
        last_modified=day + timedelta(days=2),
    )
    contact_id = crm.seed_person(kind=PersonKind.CONTACT, email="r@example.com")
    answers = crm.reconcile(
        [
            PersonByEmail("R@example.com", PersonKind.LEAD),
            PersonByEmail("r@example.com", PersonKind.CONTACT),
            TaskByMarker("none"),
            MembershipByPerson("701x", newer),
        ]
    )
    assert answers == [newer, contact_id, None, None]


def test_people_inspection_and_repr() -> None:
    """people() lists every record with all its fields; the repr summarises counts."""
    crm = InMemoryCRM()
    crm.create_people([lead("p@example.com", FirstName="Pat")])
    (record,) = crm.people()
    assert record.fields["FirstName"] == "Pat"
    assert record.fields["Email"] == "p@example.com"
    assert (
        repr(crm) == "InMemoryCRM(person_kind=LEAD, people=1, accounts=0, tasks=0, memberships=0)"
    )
