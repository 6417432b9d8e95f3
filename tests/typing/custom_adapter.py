"""A complete custom adapter: the "CRM" is a SQLite database the host application already has.

This is the example of ``docs/adapters.md``. It is type-checked with the rest of
``tests/typing`` (a Protocol change that breaks implementers fails ``mypy``) and run through
the conformance kit by ``tests/conformance/test_custom_example.py``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from signals_crm.adapters import Capabilities, CRMAdapter
from signals_crm.core.crm import (
    CampaignMembershipWrite,
    PersonByEmail,
    PersonUpdate,
    PersonWrite,
    ReconcileQuery,
    TaskByMarker,
    TaskWrite,
    WriteResult,
)
from signals_crm.core.model import (
    AccountRecord,
    CRMUser,
    FieldSchema,
    FieldType,
    FieldValue,
    ObjectSchema,
    PersonKind,
    PersonRecord,
    is_valid_email,
    normalize_email,
)
from signals_crm.exceptions import (
    CRMAPIError,
    CRMServerError,
    DuplicateRecordError,
    NotFoundError,
)

TABLES = """
CREATE TABLE IF NOT EXISTS person (
    id INTEGER PRIMARY KEY, email TEXT, email_key TEXT UNIQUE,
    first_name TEXT, last_name TEXT, company TEXT, modified TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS account (
    id INTEGER PRIMARY KEY, domain TEXT NOT NULL, name TEXT, industry TEXT);
CREATE TABLE IF NOT EXISTS crm_user (
    id INTEGER PRIMARY KEY, email TEXT, name TEXT, active INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS task (
    id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL, marker TEXT NOT NULL,
    subject TEXT, body TEXT);
CREATE TABLE IF NOT EXISTS campaign (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE IF NOT EXISTS member (
    id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL, person_id INTEGER NOT NULL,
    UNIQUE (campaign_id, person_id));
"""

TEXT_LENGTH = 80
PERSON = ObjectSchema(
    name="person",
    fields=[
        FieldSchema(name="email", type=FieldType.EMAIL, length=TEXT_LENGTH),
        FieldSchema(name="first_name", length=TEXT_LENGTH),
        FieldSchema(name="last_name", length=TEXT_LENGTH),
        FieldSchema(name="company", length=TEXT_LENGTH),
    ],
)
ACCOUNT = ObjectSchema(
    name="account",
    fields=[
        FieldSchema(name="domain", length=TEXT_LENGTH),
        FieldSchema(name="name", length=TEXT_LENGTH),
        FieldSchema(name="industry", length=TEXT_LENGTH),
    ],
)
SCHEMAS = {"person": PERSON, "account": ACCOUNT}


def create_tables(db: sqlite3.Connection) -> None:
    """Create the example CRM's tables (what the host's database would already have)."""
    db.executescript(TABLES)


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SQLiteCRMAdapter:
    """A blocking adapter over the host's SQLite "CRM" (contacts are the person records)."""

    def __init__(
        self,
        db: sqlite3.Connection,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._clock = clock
        self._capabilities = Capabilities(
            name="sqlite-example",
            person_kind=PersonKind.CONTACT,
            person_object="person",
            email_field="email",
            lookup_batch_size=400,  # emails per query, passed as one JSON parameter
            write_batch_size=400,
            campaign_kind="campaign",
            account_object="account",
        )

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Only the library's error tree escapes: database failures become CRMServerError."""
        try:
            with self._db:  # one transaction per call, committed at the end
                yield
        except sqlite3.Error as exc:
            locked = isinstance(exc, sqlite3.OperationalError)  # "database is locked"
            raise CRMServerError(f"database error: {exc}", retryable=locked) from exc

    # -- reads ----------------------------------------------------------------------------------

    def find_people(
        self, emails: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[PersonRecord, ...]]:
        keys = [normalize_email(e) for e in emails]
        found: dict[str, list[PersonRecord]] = {}
        with self._errors():
            for chunk in _chunks(sorted(set(keys)), self.capabilities.lookup_batch_size):
                rows = self._db.execute(
                    "SELECT id, email, email_key, first_name, last_name, company, modified"
                    " FROM person WHERE email_key IN (SELECT value FROM json_each(?))"
                    " ORDER BY id",
                    (json.dumps(list(chunk)),),
                )
                for row in rows:
                    names = ("email", "first_name", "last_name", "company")
                    values = dict(zip(names, (row[1], *row[3:6]), strict=True))
                    record = PersonRecord(
                        id=str(row[0]),
                        kind=PersonKind.CONTACT,
                        email=row[1],
                        fields={name: values.get(name.lower()) for name in fields},
                        last_modified=datetime.fromisoformat(row[6]),
                    )
                    found.setdefault(row[2], []).append(record)
        return [tuple(found.get(key, ())) for key in keys]

    def find_accounts(
        self, domains: Sequence[str], fields: Sequence[str] = ()
    ) -> list[tuple[AccountRecord, ...]]:
        keys = [d.strip().lower() for d in domains]
        found: dict[str, list[AccountRecord]] = {}
        with self._errors():
            for chunk in _chunks(sorted(set(keys)), self.capabilities.lookup_batch_size):
                rows = self._db.execute(
                    "SELECT id, domain, name, industry FROM account"
                    " WHERE domain IN (SELECT value FROM json_each(?)) ORDER BY id",
                    (json.dumps(list(chunk)),),
                )
                for row in rows:
                    values = {"domain": row[1], "name": row[2], "industry": row[3]}
                    found.setdefault(row[1], []).append(
                        AccountRecord(
                            id=str(row[0]),
                            domain=row[1],
                            name=row[2],
                            fields={name: values.get(name.lower()) for name in fields},
                        )
                    )
        return [tuple(found.get(key, ())) for key in keys]

    def list_users(self) -> list[CRMUser]:
        with self._errors():
            rows = self._db.execute("SELECT id, email, name, active FROM crm_user ORDER BY id")
            return [CRMUser(id=str(r[0]), email=r[1], name=r[2], active=bool(r[3])) for r in rows]

    def describe(self, object_name: str) -> ObjectSchema:
        schema = SCHEMAS.get(object_name.lower())
        if schema is None:
            raise NotFoundError(f"no object {object_name!r}", error_code="NOT_FOUND")
        return schema

    # -- writes ---------------------------------------------------------------------------------

    @staticmethod
    def _invalid(values: Mapping[str, FieldValue]) -> CRMAPIError | None:
        """The first problem with these person values, or None: checked before any SQL."""
        for name, value in values.items():
            field = PERSON.get(name)
            if field is None:
                return CRMAPIError(f"unknown field {name!r}", error_code="INVALID_FIELD")
            if value is not None and len(str(value)) > TEXT_LENGTH:
                return CRMAPIError(f"{name} is too long", error_code="STRING_TOO_LONG")
            if field.type is FieldType.EMAIL and value and not is_valid_email(str(value)):
                return CRMAPIError(f"invalid email {value!r}", error_code="INVALID_EMAIL")
        return None

    def _duplicate(self, email: str) -> DuplicateRecordError:
        row = self._db.execute(
            "SELECT id FROM person WHERE email_key = ?", (normalize_email(email),)
        ).fetchone()
        matched = [str(row[0])] if row else []
        return DuplicateRecordError("email already in use", matched_ids=matched)

    def _create_one(self, record: PersonWrite) -> WriteResult:
        values = {k.lower(): v for k, v in record.fields.items()}
        values["email"] = record.email.strip()  # PersonWrite.email is the truth
        error = self._invalid(values)
        if error is not None:
            return WriteResult.failure(error)
        try:
            cursor = self._db.execute(
                "INSERT INTO person (email, email_key, first_name, last_name, company, modified)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    values["email"],
                    normalize_email(record.email),
                    values.get("first_name"),
                    values.get("last_name"),
                    values.get("company"),
                    self._clock().isoformat(),
                ),
            )
        except sqlite3.IntegrityError:
            return WriteResult.failure(self._duplicate(record.email))
        return WriteResult.success(str(cursor.lastrowid))

    def create_people(self, records: Sequence[PersonWrite]) -> list[WriteResult]:
        with self._errors():
            return [self._create_one(r) for r in records]

    def _update_one(self, update: PersonUpdate) -> WriteResult:
        values = {k.lower(): v for k, v in update.fields.items()}
        error = self._invalid(values)
        if error is not None:
            return WriteResult.failure(error)
        if "email" in values:
            email = values["email"]
            values["email_key"] = normalize_email(str(email)) if email else None
        values["modified"] = self._clock().isoformat()
        assignments = ", ".join(f"{name} = ?" for name in values)
        sql = f"UPDATE person SET {assignments} WHERE id = ?"  # noqa: S608  # known columns only
        try:
            cursor = self._db.execute(sql, (*values.values(), update.record_id))
        except sqlite3.IntegrityError:
            return WriteResult.failure(self._duplicate(str(values["email"])))
        if cursor.rowcount == 0:
            return WriteResult.failure(NotFoundError(f"no person {update.record_id}"))
        return WriteResult.success(update.record_id, created=False)

    def update_people(self, records: Sequence[PersonUpdate]) -> list[WriteResult]:
        with self._errors():
            return [self._update_one(r) for r in records]

    def _exists(self, table: str, record_id: str) -> bool:
        query = f"SELECT 1 FROM {table} WHERE id = ?"  # noqa: S608  # table is ours
        return self._db.execute(query, (record_id,)).fetchone() is not None

    def _create_task(self, task: TaskWrite) -> WriteResult:
        if not self._exists("person", task.person_id):
            return WriteResult.failure(NotFoundError(f"no person {task.person_id}"))
        cursor = self._db.execute(
            "INSERT INTO task (person_id, marker, subject, body) VALUES (?, ?, ?, ?)",
            (task.person_id, task.marker, task.subject, task.body),
        )
        return WriteResult.success(str(cursor.lastrowid))

    def create_tasks(self, tasks: Sequence[TaskWrite]) -> list[WriteResult]:
        with self._errors():
            return [self._create_task(t) for t in tasks]

    def _add_member(self, membership: CampaignMembershipWrite) -> WriteResult:
        if not self._exists("campaign", membership.campaign_id):
            return WriteResult.failure(NotFoundError(f"no campaign {membership.campaign_id}"))
        if not self._exists("person", membership.person_id):
            return WriteResult.failure(NotFoundError(f"no person {membership.person_id}"))
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO member (campaign_id, person_id) VALUES (?, ?)",
            (membership.campaign_id, membership.person_id),
        )
        member_id = self._member_id(membership.campaign_id, membership.person_id)
        assert member_id is not None  # inserted just now, or already there
        return WriteResult.success(member_id, created=cursor.rowcount == 1)

    def _member_id(self, campaign_id: str, person_id: str) -> str | None:
        row = self._db.execute(
            "SELECT id FROM member WHERE campaign_id = ? AND person_id = ?",
            (campaign_id, person_id),
        ).fetchone()
        return str(row[0]) if row else None

    def add_to_campaign(self, memberships: Sequence[CampaignMembershipWrite]) -> list[WriteResult]:
        with self._errors():
            return [self._add_member(m) for m in memberships]

    def _reconcile_one(self, query: ReconcileQuery) -> str | None:
        if isinstance(query, PersonByEmail):
            sql, args = "SELECT id FROM person WHERE email_key = ?", (normalize_email(query.email),)
        elif isinstance(query, TaskByMarker):
            sql, args = "SELECT min(id) FROM task WHERE marker = ?", (query.marker,)
        else:
            return self._member_id(query.campaign_id, query.person_id)
        row = self._db.execute(sql, args).fetchone()
        return str(row[0]) if row and row[0] is not None else None

    def reconcile(self, queries: Sequence[ReconcileQuery]) -> list[str | None]:
        with self._errors():
            return [self._reconcile_one(q) for q in queries]


class SQLiteBackdoor:
    """The kit's backdoor: plain SQL on the same database, bypassing the adapter."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def _insert(self, sql: str, args: tuple[object, ...]) -> str:
        with self._db:
            return str(self._db.execute(sql, args).lastrowid)

    def seed_person(
        self,
        *,
        kind: PersonKind,
        email: str,
        fields: Mapping[str, FieldValue] | None = None,
        is_converted: bool = False,
        converted_contact_id: str | None = None,
        last_modified: datetime | None = None,
    ) -> str:
        if kind is not PersonKind.CONTACT or is_converted or converted_contact_id:
            raise ValueError("this CRM only has (unconverted) contacts")
        values = {k.lower(): v for k, v in (fields or {}).items()}
        modified = last_modified or datetime(2024, 1, 1, tzinfo=UTC)
        return self._insert(
            "INSERT INTO person (email, email_key, first_name, last_name, company, modified)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                email,
                normalize_email(email),
                values.get("first_name"),
                values.get("last_name"),
                values.get("company"),
                modified.isoformat(),
            ),
        )

    def seed_account(
        self, *, domain: str, name: str, fields: Mapping[str, FieldValue] | None = None
    ) -> str:
        industry = (fields or {}).get("industry")
        return self._insert(
            "INSERT INTO account (domain, name, industry) VALUES (?, ?, ?)",
            (domain.strip().lower(), name, industry),
        )

    def seed_user(self, *, email: str, active: bool = True, name: str | None = None) -> str:
        return self._insert(
            "INSERT INTO crm_user (email, name, active) VALUES (?, ?, ?)", (email, name, active)
        )

    def seed_campaign(self, *, name: str) -> str:
        return self._insert("INSERT INTO campaign (name) VALUES (?)", (name,))

    def person_fields(self, record_id: str) -> Mapping[str, FieldValue] | None:
        row = self._db.execute(
            "SELECT email, first_name, last_name, company FROM person WHERE id = ?", (record_id,)
        ).fetchone()
        if row is None:
            return None
        return dict(zip(("email", "first_name", "last_name", "company"), row, strict=True))

    def people_with_email(self, email: str) -> list[str]:
        rows = self._db.execute(
            "SELECT id FROM person WHERE email_key = ? ORDER BY id", (normalize_email(email),)
        )
        return [str(r[0]) for r in rows]

    def task_markers(self, person_id: str) -> list[str]:
        rows = self._db.execute("SELECT marker FROM task WHERE person_id = ?", (person_id,))
        return [str(r[0]) for r in rows]

    def campaign_members(self, campaign_id: str) -> set[str]:
        rows = self._db.execute(
            "SELECT person_id FROM member WHERE campaign_id = ?", (campaign_id,)
        )
        return {str(r[0]) for r in rows}

    def enable_duplicate_detection(self) -> bool:
        return True  # the UNIQUE email_key index is always on


def _type_checks(db: sqlite3.Connection) -> None:
    """Never run: mypy checks that the example satisfies the Protocol."""
    adapter: CRMAdapter = SQLiteCRMAdapter(db)
    del adapter
