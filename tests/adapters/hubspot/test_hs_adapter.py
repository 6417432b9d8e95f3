"""Behaviour of the HubSpot adapter against the local portal, beyond the conformance kit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import attrs
import httpx
import pytest
from hubspot_support import BASE_URL, TOKEN, FakeClock, limiters

from signals_crm.adapters.hubspot import (
    CAPABILITIES,
    AsyncHubSpotAdapter,
    HubSpotAdapter,
    HubSpotAPI,
    membership_id,
)
from signals_crm.adapters.hubspot._requests import marker_line
from signals_crm.core.crm import (
    CampaignMembershipWrite,
    MembershipByPerson,
    PersonByEmail,
    PersonUpdate,
    PersonWrite,
    TaskByMarker,
    TaskWrite,
)
from signals_crm.core.model import ActivityKind, FieldType, PersonKind
from signals_crm.exceptions import (
    AuthenticationError,
    ConfigurationError,
    CRMAPIError,
    CRMServerError,
    DuplicateRecordError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    TransportError,
)
from signals_crm.testing.hubspot import Faults, HubSpotBackdoor, LocalHubSpot


def write(address: str, **fields: object) -> PersonWrite:
    return PersonWrite(
        key=f"k-{address}",
        kind=PersonKind.CONTACT,
        email=address,
        fields=fields,  # type: ignore[arg-type]
    )


def update(record_id: str, **fields: object) -> PersonUpdate:
    return PersonUpdate(
        key=f"u-{record_id}",
        record_id=record_id,
        kind=PersonKind.CONTACT,
        fields=fields,  # type: ignore[arg-type]
    )


def task(person: str, marker: str, day: date | None = date(2024, 5, 17)) -> TaskWrite:
    return TaskWrite(
        key=f"t-{marker}",
        person_id=person,
        person_kind=PersonKind.CONTACT,
        activity_kind=ActivityKind.CHAT_TRANSCRIPT,
        subject="Signals chat transcript",
        body="Visitor: hi",
        marker=marker,
        activity_date=day,
    )


def join(list_id: str, person: str) -> CampaignMembershipWrite:
    return CampaignMembershipWrite(
        key=f"m-{person}", campaign_id=list_id, person_id=person, person_kind=PersonKind.CONTACT
    )


def calls(portal: LocalHubSpot, fragment: str) -> int:
    return sum(1 for _, path in portal.requests if fragment in path)


# -- capabilities and configuration ------------------------------------------------------------


def test_capabilities_declare_contacts_lists_and_batches_of_100(adapter: HubSpotAdapter) -> None:
    """The adapter declares HubSpot's shape: contacts updated in place, lists as campaigns."""
    caps = adapter.capabilities
    assert caps is CAPABILITIES
    assert caps.person_kind is PersonKind.CONTACT
    assert (caps.person_object, caps.email_field, caps.account_object) == (
        "contacts",
        "email",
        "companies",
    )
    assert caps.separate_contacts is False
    assert (caps.lookup_batch_size, caps.write_batch_size) == (100, 100)
    assert caps.campaign_kind == "list"
    assert caps.max_task_body_length == 65536


def test_exactly_one_credential_is_required(client: httpx.Client) -> None:
    """No credential at all is a configuration error naming auth."""
    with pytest.raises(ConfigurationError, match="auth"):
        HubSpotAdapter(client)


def test_repr_hides_the_token(adapter: HubSpotAdapter) -> None:
    """The adapter's repr names where it talks to, never its token."""
    assert TOKEN not in repr(adapter)
    assert "api.hubapi.com" in repr(adapter)


# -- contacts ----------------------------------------------------------------------------------


def test_create_sends_strings_lowercased_email_and_lead_stage(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor
) -> None:
    """New contacts get lifecyclestage=lead, a lower-cased email and string values."""
    (result,) = adapter.create_people(
        [write("  Ada.Lovelace@Example.COM ", firstname="Ada", numemployees=12, email="x@y.z")]
    )
    assert result.ok
    assert result.id is not None
    stored = backdoor.person_fields(result.id)
    assert stored is not None
    assert stored["email"] == "ada.lovelace@example.com"
    assert stored["lifecyclestage"] == "lead"
    assert stored["numemployees"] == "12"


def test_a_caller_stage_is_kept_on_create(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor
) -> None:
    """A mapped lifecycle stage on create wins over the default "lead"."""
    (result,) = adapter.create_people(
        [write("mql@example.com", lifecyclestage="marketingqualifiedlead")]
    )
    assert result.id is not None
    assert (backdoor.person_fields(result.id) or {})["lifecyclestage"] == "marketingqualifiedlead"


def test_owner_is_written_as_hubspot_owner_id(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor
) -> None:
    """PersonWrite.owner_id lands in hubspot_owner_id."""
    owner = backdoor.seed_user(email="sally@example.com", name="Sally S")
    record = write("owned@example.com")
    record = PersonWrite(key="k", kind=PersonKind.CONTACT, email=record.email, owner_id=owner)
    (result,) = adapter.create_people([record])
    assert result.id is not None
    assert (backdoor.person_fields(result.id) or {})["hubspot_owner_id"] == owner


def test_duplicate_in_a_full_batch_costs_two_more_calls_and_no_second_create(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor, portal: LocalHubSpot
) -> None:
    """A 409 on a 100-record batch names one contact; the rest are resent once, all get results."""
    existing = backdoor.seed_person(kind=PersonKind.CONTACT, email="taken@example.com")
    emails = [f"p{n}@example.com" for n in range(100)]
    emails[50] = "TAKEN@example.com"
    results = adapter.create_people([write(e) for e in emails])
    assert len(results) == 100
    dup = results[50]
    assert isinstance(dup.error, DuplicateRecordError)
    assert dup.duplicate_of == (existing,)
    assert all(r.ok for i, r in enumerate(results) if i != 50)
    assert backdoor.people_with_email("taken@example.com") == [existing]
    assert calls(portal, "/batch/create") == 2
    assert calls(portal, f"/contacts/{existing}") == 1


def test_several_duplicates_are_all_found(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor
) -> None:
    """Each duplicate in one batch gets its own DuplicateRecordError with its own id."""
    first = backdoor.seed_person(kind=PersonKind.CONTACT, email="one@example.com")
    second = backdoor.seed_person(kind=PersonKind.CONTACT, email="two@example.com")
    results = adapter.create_people(
        [write("new1@example.com"), write("two@example.com"), write("one@example.com")]
    )
    assert results[0].ok
    assert results[1].duplicate_of == (second,)
    assert results[2].duplicate_of == (first,)


def test_same_email_twice_in_one_call_creates_once(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor, portal: LocalHubSpot
) -> None:
    """Two writes with one email: the first is created, the second is a duplicate of it."""
    results = adapter.create_people([write("twin@example.com"), write(" Twin@Example.com")])
    assert results[0].ok
    assert isinstance(results[1].error, DuplicateRecordError)
    assert results[1].duplicate_of == (results[0].id,)
    assert backdoor.people_with_email("twin@example.com") == [results[0].id]
    assert calls(portal, "/batch/create") == 1


def test_conflict_without_an_id_falls_back_to_a_lookup(
    adapter: HubSpotAdapter,
    backdoor: HubSpotBackdoor,
    portal: LocalHubSpot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When a single-record 409 names no id, the adapter looks the email up."""
    existing = backdoor.seed_person(kind=PersonKind.CONTACT, email="noid@example.com")

    def no_id(existing: object) -> httpx.Response:
        del existing
        return portal._error(409, "CONFLICT", "Contact already exists.")

    monkeypatch.setattr(portal, "_conflict", no_id)
    (result,) = adapter.create_people([write("noid@example.com")])
    assert result.duplicate_of == (existing,)


def test_update_never_moves_the_lifecycle_stage_backwards(
    clock: FakeClock, backdoor: HubSpotBackdoor
) -> None:
    """A backward stage is dropped before sending (the portal would refuse it); forward passes."""
    portal = LocalHubSpot(clock=clock, sleep=clock.sleep, backward_lifecycle="reject")
    door = portal.backdoor
    customer = door.seed_person(
        kind=PersonKind.CONTACT, email="c@example.com", fields={"lifecyclestage": "customer"}
    )
    lead = door.seed_person(kind=PersonKind.CONTACT, email="l@example.com")
    with httpx.Client(transport=portal.transport()) as client:
        adapter = HubSpotAdapter(client, TOKEN, **limiters(clock))
        results = adapter.update_people(
            [
                update(customer, lifecyclestage="lead", firstname="Cus"),
                update(lead, lifecyclestage="opportunity"),
                update(lead, lifecyclestage=""),
            ]
        )
    assert all(r.ok for r in results), results
    assert (door.person_fields(customer) or {})["lifecyclestage"] == "customer"
    assert (door.person_fields(customer) or {})["firstname"] == "Cus"
    assert (door.person_fields(lead) or {})["lifecyclestage"] == "opportunity"


def test_update_with_nothing_to_change_sends_nothing(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor, portal: LocalHubSpot
) -> None:
    """An update whose fields are all dropped answers success without a call."""
    person = backdoor.seed_person(
        kind=PersonKind.CONTACT, email="n@example.com", fields={"lifecyclestage": "customer"}
    )
    before = len(portal.requests)
    (result,) = adapter.update_people([update(person)])
    assert result.ok
    assert result.id == person
    assert len(portal.requests) == before


def test_update_of_one_record_twice_in_a_call_is_split(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor
) -> None:
    """HubSpot refuses duplicate ids in a batch; the adapter sends them in order, separately."""
    person = backdoor.seed_person(kind=PersonKind.CONTACT, email="twice@example.com")
    results = adapter.update_people([update(person, firstname="A"), update(person, firstname="B")])
    assert all(r.ok for r in results)
    assert (backdoor.person_fields(person) or {})["firstname"] == "B"


def test_bad_option_fails_alone_naming_the_field(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor
) -> None:
    """An invalid enumeration value fails that record with the field named."""
    good = backdoor.seed_person(kind=PersonKind.CONTACT, email="g@example.com")
    bad = backdoor.seed_person(kind=PersonKind.CONTACT, email="b@example.com")
    results = adapter.update_people(
        [update(good, firstname="G"), update(bad, hs_lead_status="WARM")]
    )
    assert results[0].ok
    assert isinstance(results[1].error, CRMAPIError)
    assert results[1].error.fields == ("hs_lead_status",)
    assert "INVALID_OPTION" in results[1].error.message


def test_find_people_reads_owner_and_modified_time(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor
) -> None:
    """Found contacts carry their owner id and last-modified time; fields are strings or None."""
    owner = backdoor.seed_user(email="o@example.com")
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    person = backdoor.seed_person(
        kind=PersonKind.CONTACT,
        email="f@example.com",
        fields={"hubspot_owner_id": owner, "numemployees": 7},
        last_modified=when,
    )
    ((record,),) = adapter.find_people(["F@EXAMPLE.COM"], ["numemployees", "jobtitle"])
    assert record.id == person
    assert record.owner_id == owner
    assert record.last_modified == when
    assert record.fields == {"numemployees": "7", "jobtitle": None}


def test_find_people_skips_empty_emails(adapter: HubSpotAdapter, portal: LocalHubSpot) -> None:
    """Blank emails answer () without asking HubSpot."""
    assert adapter.find_people(["", "   "]) == [(), ()]
    assert portal.requests == []


# -- activities --------------------------------------------------------------------------------


def test_tasks_carry_timestamp_association_and_marker(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor, portal: LocalHubSpot
) -> None:
    """A task has hs_timestamp, subject, marker in its body, and association 204 to the contact."""
    person = backdoor.seed_person(kind=PersonKind.CONTACT, email="t@example.com")
    (result,) = adapter.create_tasks([task(person, "conv-1:transcript")])
    assert result.id is not None
    stored = portal.objects["tasks"][result.id]
    assert stored.props["hs_timestamp"] == "2024-05-17T00:00:00.000Z"
    assert stored.props["hs_task_subject"] == "Signals chat transcript"
    assert stored.props["hs_task_status"] == "NOT_STARTED"
    assert stored.assoc["contacts"] == {person: {204}}
    assert backdoor.task_markers(person) == ["conv-1:transcript"]


def test_task_without_a_date_uses_the_injected_now(
    client: httpx.Client, clock: FakeClock, portal: LocalHubSpot, backdoor: HubSpotBackdoor
) -> None:
    """hs_timestamp is required: an undated task is stamped with the adapter's clock."""
    adapter = HubSpotAdapter(
        client, TOKEN, now=lambda: datetime(2025, 1, 1, 8, 0, tzinfo=UTC), **limiters(clock)
    )
    person = backdoor.seed_person(kind=PersonKind.CONTACT, email="u@example.com")
    (result,) = adapter.create_tasks([task(person, "m", day=None)])
    assert result.id is not None
    assert portal.objects["tasks"][result.id].props["hs_timestamp"] == "2025-01-01T08:00:00.000Z"


def test_notes_can_replace_tasks(
    client: httpx.Client, clock: FakeClock, portal: LocalHubSpot, backdoor: HubSpotBackdoor
) -> None:
    """With activity_object="notes", activities are notes (type 202) and reconcile finds them."""
    adapter = HubSpotAdapter(client, TOKEN, activity_object="notes", **limiters(clock))
    person = backdoor.seed_person(kind=PersonKind.CONTACT, email="note@example.com")
    (result,) = adapter.create_tasks([task(person, "conv-9:transcript")])
    assert result.id is not None
    note = portal.objects["notes"][result.id]
    assert note.assoc["contacts"] == {person: {202}}
    assert note.props["hs_note_body"].startswith("Signals chat transcript\n\nVisitor: hi")
    assert adapter.reconcile([TaskByMarker("conv-9:transcript")]) == [result.id]


def test_marker_property_option(
    client: httpx.Client, clock: FakeClock, portal: LocalHubSpot, backdoor: HubSpotBackdoor
) -> None:
    """With marker_property, the marker is also a property and reconcile searches it by EQ."""
    portal.add_property("tasks", "signals_marker", label="Signals marker")
    adapter = HubSpotAdapter(client, TOKEN, marker_property="signals_marker", **limiters(clock))
    person = backdoor.seed_person(kind=PersonKind.CONTACT, email="mp@example.com")
    (result,) = adapter.create_tasks([task(person, "Conv-7")])
    assert result.id is not None
    assert portal.objects["tasks"][result.id].props["signals_marker"] == "Conv-7"
    assert adapter.reconcile([TaskByMarker("Conv-7"), TaskByMarker("conv-7")]) == [result.id, None]


def test_reconcile_searches_five_markers_per_call(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor, portal: LocalHubSpot
) -> None:
    """Markers are reconciled five per search (five filter groups), in input order."""
    person = backdoor.seed_person(kind=PersonKind.CONTACT, email="many@example.com")
    results = adapter.create_tasks([task(person, f"mk-{n}") for n in range(7)])
    queries = [TaskByMarker(f"mk-{n}") for n in reversed(range(8))]
    before = calls(portal, "/search")
    answers = adapter.reconcile(queries)
    assert answers == [None, *[r.id for r in reversed(results)]]
    assert calls(portal, "/search") - before == 2


def test_a_quoted_marker_never_matches_another_conversation(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor
) -> None:
    """A transcript quoting conversation B's marker line is A's task, never B's."""
    person = backdoor.seed_person(kind=PersonKind.CONTACT, email="spoof@example.com")
    quoted = f"Visitor: look {marker_line('signals:c-b:transcript')} ok"
    spoofing = attrs.evolve(task(person, "signals:c-a:transcript"), body=quoted)
    (result,) = adapter.create_tasks([spoofing])
    answers = adapter.reconcile(
        [TaskByMarker("signals:c-b:transcript"), TaskByMarker("signals:c-a:transcript")]
    )
    assert answers == [None, result.id]
    assert backdoor.task_markers(person) == ["signals:c-a:transcript"]


def test_a_marker_is_compared_whole(adapter: HubSpotAdapter, backdoor: HubSpotBackdoor) -> None:
    """A marker that is a prefix or an extension of another never matches it."""
    person = backdoor.seed_person(kind=PersonKind.CONTACT, email="whole@example.com")
    (result,) = adapter.create_tasks([task(person, "signals:c-1:transcript")])
    answers = adapter.reconcile(
        [
            TaskByMarker("signals:c-1"),
            TaskByMarker("signals:c-1:transcript:2"),
            TaskByMarker("signals:c-1:transcript"),
        ]
    )
    assert answers == [None, None, result.id]


def test_a_task_is_read_from_its_contact_while_search_still_lags(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor, portal: LocalHubSpot
) -> None:
    """A TaskByMarker naming its contact (by id or by email) is answered from the contact's
    task associations and a batch read of those tasks, never by search: found while the
    search index still trails the write."""
    portal.search_lag = 3600.0  # the search index has not seen the new task yet
    person = backdoor.seed_person(kind=PersonKind.CONTACT, email="assoc@example.com")
    (result,) = adapter.create_tasks([task(person, "signals:c-1:transcript")])
    assert adapter.reconcile([TaskByMarker("signals:c-1:transcript")]) == [None]  # search lags
    before = calls(portal, "/search")
    answers = adapter.reconcile(
        [
            TaskByMarker("signals:c-1:transcript", person_id=person),
            TaskByMarker("signals:c-1:transcript", email=" Assoc@Example.com "),
            TaskByMarker("signals:c-1:meeting:m-1", person_id=person),
            TaskByMarker("signals:c-1:transcript", email="nobody@example.com"),
        ]
    )
    assert answers == [result.id, result.id, None, None]
    assert calls(portal, "/search") == before
    assert calls(portal, "/crm/v4/associations/contacts/tasks/batch/read") >= 1
    assert CAPABILITIES.reads_tasks_by_person


def test_a_quoted_marker_never_matches_through_the_contact_either(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor
) -> None:
    """Read from the contact, a task quoting conversation B's marker line (or token) is A's
    task only: the marker is compared whole, as for a search hit."""
    person = backdoor.seed_person(kind=PersonKind.CONTACT, email="spoof2@example.com")
    quoted = f"Visitor: look {marker_line('signals:c-b:transcript')} ok"
    spoofing = attrs.evolve(task(person, "signals:c-a:transcript"), body=quoted)
    (result,) = adapter.create_tasks([spoofing])
    answers = adapter.reconcile(
        [
            TaskByMarker("signals:c-b:transcript", person_id=person),
            TaskByMarker("signals:c-a:transcript", person_id=person),
            TaskByMarker("signals:c-a", person_id=person),
        ]
    )
    assert answers == [None, result.id, None]


def test_a_task_on_another_contact_is_not_found_through_this_one(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor
) -> None:
    """Read from the contact named, a task with the marker on some other contact is not it."""
    one = backdoor.seed_person(kind=PersonKind.CONTACT, email="one@example.com")
    other = backdoor.seed_person(kind=PersonKind.CONTACT, email="other@example.com")
    (result,) = adapter.create_tasks([task(other, "signals:c-9:transcript")])
    answers = adapter.reconcile(
        [
            TaskByMarker("signals:c-9:transcript", person_id=one),
            TaskByMarker("signals:c-9:transcript", person_id=other),
        ]
    )
    assert answers == [None, result.id]


def test_tasks_of_a_contact_are_read_page_by_page(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor, portal: LocalHubSpot
) -> None:
    """A contact with more associated tasks than one association page holds is read to its
    last page, and its tasks in batches of 100."""
    portal.association_page_size = 3
    person = backdoor.seed_person(kind=PersonKind.CONTACT, email="pages@example.com")
    results = adapter.create_tasks([task(person, f"signals:c-{n}:transcript") for n in range(7)])
    answers = adapter.reconcile(
        [TaskByMarker(f"signals:c-{n}:transcript", person_id=person) for n in (6, 0, 3)]
    )
    assert answers == [results[6].id, results[0].id, results[3].id]
    assert calls(portal, "/crm/v4/associations/contacts/tasks/batch/read") == 3


def test_invalid_activity_object_is_refused(client: httpx.Client) -> None:
    """Only tasks and notes can carry activities."""
    with pytest.raises(ConfigurationError, match="activity_object"):
        HubSpotAdapter(client, TOKEN, activity_object="meetings")


# -- lists -------------------------------------------------------------------------------------


def test_list_membership_results(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor, portal: LocalHubSpot
) -> None:
    """Added → created; repeated in the call → created=False; missing record → NotFoundError."""
    campaign = backdoor.seed_campaign(name="Leads")
    person = backdoor.seed_person(kind=PersonKind.CONTACT, email="l@example.com")
    results = adapter.add_to_campaign(
        [join(campaign, person), join(campaign, "424242"), join(campaign, person)]
    )
    assert results[0].ok
    assert results[0].created is True
    assert results[0].id == membership_id(campaign, person)
    assert isinstance(results[1].error, NotFoundError)
    assert results[2].ok
    assert results[2].created is False
    assert backdoor.campaign_members(campaign) == {person}
    assert calls(portal, "/memberships/add") == 1
    assert adapter.reconcile([MembershipByPerson(campaign, person)]) == [results[0].id]


def test_missing_or_dynamic_lists_fail_per_record(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor, portal: LocalHubSpot
) -> None:
    """A list that does not exist, or is not MANUAL, fails its memberships without raising."""
    person = backdoor.seed_person(kind=PersonKind.CONTACT, email="d@example.com")
    dynamic = portal.create_list("Smart list", processing_type="DYNAMIC")
    results = adapter.add_to_campaign([join("777777", person), join(dynamic, person)])
    assert isinstance(results[0].error, NotFoundError)
    assert isinstance(results[1].error, CRMAPIError)
    assert results[1].error.retryable is False


# -- accounts, owners, schema --------------------------------------------------------------------


def test_find_accounts_normalises_domains_and_reads_owner_properties(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor
) -> None:
    """Domains match whatever their scheme, www. or case; owner properties come back as ids."""
    owner = backdoor.seed_user(email="am@example.com")
    company = backdoor.seed_account(
        domain="acme.com", name="Acme", fields={"hubspot_owner_id": owner, "account_manager": owner}
    )
    found = adapter.find_accounts(
        ["https://www.ACME.com/pricing", "nobody.example"], ["hubspot_owner_id", "account_manager"]
    )
    ((account,), nothing) = found
    assert nothing == ()
    assert account.id == company
    assert account.fields == {"hubspot_owner_id": owner, "account_manager": owner}


def test_many_domains_are_searched_in_bodies_under_3000_characters(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor, portal: LocalHubSpot
) -> None:
    """A long domain list is split so that no search body exceeds HubSpot's limit."""
    ids = [
        backdoor.seed_account(domain=f"company-number-{n}.example.com", name=f"C{n}")
        for n in range(150)
    ]
    found = adapter.find_accounts([f"company-number-{n}.example.com" for n in range(150)])
    assert [r[0].id for r in found] == ids
    assert calls(portal, "/search") > 1


def test_owners_are_paged_and_archived_ones_inactive(
    adapter: HubSpotAdapter, backdoor: HubSpotBackdoor
) -> None:
    """list_users pages through every owner; archived owners come back inactive."""
    active = [backdoor.seed_user(email=f"u{n}@example.com", name=f"U {n}") for n in range(130)]
    gone = backdoor.seed_user(email="gone@example.com", active=False)
    users = {u.id: u for u in adapter.list_users()}
    assert set(users) == {*active, gone}
    assert users[gone].active is False
    assert users[active[0]].name == "U 0"


def test_describe_maps_property_types_and_is_cached(
    adapter: HubSpotAdapter, portal: LocalHubSpot
) -> None:
    """Properties become fields: ordered picklists, owners as references, read-only flags."""
    schema = adapter.describe("contact")
    assert adapter.describe("contacts") is schema
    assert calls(portal, "/properties/") == 1
    stage = schema.get("lifecyclestage")
    assert stage is not None
    assert stage.type is FieldType.PICKLIST
    assert stage.picklist_values is not None
    assert stage.picklist_values[:2] == ("subscriber", "lead")
    owner = schema.get("hubspot_owner_id")
    assert owner is not None
    assert owner.type is FieldType.REFERENCE
    created = schema.get("createdate")
    assert created is not None
    assert (created.createable, created.updateable) == (False, False)
    email = schema.get("email")
    assert email is not None
    assert email.type is FieldType.EMAIL
    assert email.length == 65536


# -- faults and whole-call errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inject", "kind", "retryable"),
    [
        (lambda f: f.fail_next(503), CRMServerError, True),
        (lambda f: f.gateway_error_next(502), CRMServerError, True),
        (lambda f: f.lock_next(), CRMServerError, True),
        (lambda f: f.rate_limit_next("TEN_SECONDLY_ROLLING"), RateLimitedError, True),
        (lambda f: f.rate_limit_next("DAILY"), RateLimitedError, False),
    ],
)
def test_whole_call_faults_raise_typed_errors(
    adapter: HubSpotAdapter,
    portal: LocalHubSpot,
    inject: Callable[[Faults], None],
    kind: type[CRMAPIError],
    retryable: bool,
) -> None:
    """5xx, HTML gateway pages, 423 and 429 raise the typed error with its retryability."""
    inject(portal.faults)
    with pytest.raises(kind) as raised:
        adapter.create_people([write("f@example.com")])
    assert raised.value.retryable is retryable
    assert portal.backdoor.people_with_email("f@example.com") == []


def test_a_429_pauses_the_limiter(
    adapter: HubSpotAdapter, portal: LocalHubSpot, clock: FakeClock
) -> None:
    """After a 429 the next call waits out the policy's window instead of hammering."""
    portal.faults.rate_limit_next("TEN_SECONDLY_ROLLING")
    with pytest.raises(RateLimitedError):
        adapter.find_people(["a@example.com"])
    start = clock.now
    adapter.find_people(["a@example.com"])
    assert clock.now - start >= 10.0


def test_commit_then_drop_is_unknown_and_reconciles(
    adapter: HubSpotAdapter, portal: LocalHubSpot, backdoor: HubSpotBackdoor
) -> None:
    """A create whose answer is lost raises TransportError(maybe_sent); reconcile finds it."""
    portal.faults.drop_next(path="/batch/create")
    with pytest.raises(TransportError) as raised:
        adapter.create_people([write("lost@example.com")])
    assert raised.value.maybe_sent is True
    (landed,) = backdoor.people_with_email("lost@example.com")
    assert adapter.reconcile([PersonByEmail("LOST@example.com", PersonKind.CONTACT)]) == [landed]
    (again,) = adapter.create_people([write("lost@example.com")])
    assert again.duplicate_of == (landed,)
    assert backdoor.people_with_email("lost@example.com") == [landed]


def test_invalid_token_raises_without_echoing_it(client: httpx.Client, clock: FakeClock) -> None:
    """A wrong static token is an AuthenticationError that never contains the token."""
    adapter = HubSpotAdapter(client, "pat-na1-secret-value", **limiters(clock))
    with pytest.raises(AuthenticationError) as raised:
        adapter.find_people(["a@example.com"])
    assert raised.value.error_code == "INVALID_AUTHENTICATION"
    assert "pat-na1-secret-value" not in str(raised.value)
    assert "pat-na1-secret-value" not in repr(raised.value)


def test_missing_scopes_raise_permission_denied(
    adapter: HubSpotAdapter, portal: LocalHubSpot
) -> None:
    """A 403 MISSING_SCOPES is a PermissionDeniedError (needs an admin)."""
    portal.denied_scopes.add("contacts")
    with pytest.raises(PermissionDeniedError) as raised:
        adapter.find_people(["a@example.com"])
    assert raised.value.error_code == "MISSING_SCOPES"


def test_usage_headers_are_exposed(adapter: HubSpotAdapter) -> None:
    """The last X-HubSpot-RateLimit-* headers are readable as adapter.usage."""
    adapter.find_people(["a@example.com"])
    usage = adapter.usage
    assert usage is not None
    assert (usage.max, usage.interval_ms) == (100, 10000)
    assert usage.remaining == 99
    assert usage.daily == 250_000


def test_date_versioned_paths_work_end_to_end(
    client: httpx.Client, clock: FakeClock, portal: LocalHubSpot
) -> None:
    """With version="2026-03" every call uses the date-based paths, same bodies."""
    adapter = HubSpotAdapter(client, TOKEN, api=HubSpotAPI(version="2026-03"), **limiters(clock))
    (created,) = adapter.create_people([write("dated@example.com")])
    assert adapter.find_people(["dated@example.com"])[0][0].id == created.id
    assert all("/2026-03/" in path for _, path in portal.requests)


@pytest.mark.anyio
async def test_async_adapter_splits_conflicts_too(
    async_adapter: AsyncHubSpotAdapter, backdoor: HubSpotBackdoor
) -> None:
    """The async adapter shares the flows: a duplicate is isolated, the rest created."""
    existing = backdoor.seed_person(kind=PersonKind.CONTACT, email="a1@example.com")
    results = await async_adapter.acreate_people([write("a0@example.com"), write("A1@example.com")])
    assert results[0].ok
    assert results[1].duplicate_of == (existing,)


@pytest.mark.anyio
async def test_async_drop_is_a_transport_error(
    async_adapter: AsyncHubSpotAdapter, portal: LocalHubSpot
) -> None:
    """The async driver maps dropped connections like the sync one."""
    portal.faults.drop_next(after_commit=False)
    with pytest.raises(TransportError):
        await async_adapter.afind_people(["a@example.com"])


def test_base_url_is_configurable() -> None:
    """HubSpotAPI refuses a base URL that is not http(s)."""
    with pytest.raises(ConfigurationError, match="base_url"):
        HubSpotAPI(base_url="ftp://example.com")
    assert HubSpotAPI(base_url=BASE_URL + "/").url("/x").path == "/x"


def test_a_wrong_path_raises_instead_of_failing_each_record(
    client: httpx.Client, clock: FakeClock, portal: LocalHubSpot
) -> None:
    """A 404 for an unknown path is a whole-call error, never blamed on (or split by) records."""
    adapter = HubSpotAdapter(
        client, TOKEN, api=HubSpotAPI(base_url=BASE_URL + "/typo"), **limiters(clock)
    )
    with pytest.raises(NotFoundError):
        adapter.create_people([write("a@example.com"), write("b@example.com")])
    with pytest.raises(NotFoundError):
        adapter.find_people(["a@example.com"])
    assert len(portal.requests) == 2
