"""Activity kinds the host declares: templates rendered into CRM tasks.

The rule:

1. A declared kind (:class:`~signals_crm.core.config.ActivityTemplate`) has a name (lower-case
   letters, digits, ``_``; not a built-in's), a subject template, a body template and the
   conversation roles that did the activity (the task's owner, as for the built-in kinds).
2. A template is text with ``{placeholders}``: ``{activity.<key>}`` (the activity's ``data``,
   and ``activity.kind``, ``activity.id``, ``activity.date``) or any Signals field a mapping can
   name (``{contact.first_name}``, ``{company.name}``, ``{conversation.id}``...). ``{{`` and
   ``}}`` are literal braces. A placeholder outside those families, or an unmatched brace, is
   a configuration problem when the settings load, never at sync time.
3. An empty or missing value renders as the empty text; dates render in ISO form.
4. A conversation's :class:`~signals_crm.core.model.CustomActivity` of a declared kind becomes
   an activity keyed ``<kind>:<id>`` (stable: its task's marker), dated ``occurred_on`` or the
   close date. One of a kind nobody declared is skipped with a warning in the trace.
5. Which activities become tasks is the event settings' choice (``task_events``), as for the
   built-in kinds; a manual sync creates no tasks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING

from signals_crm.core.model import Activity, Conversation, FieldValue
from signals_crm.core.trace import Reason, warning
from signals_crm.exceptions import Problem

if TYPE_CHECKING:
    from signals_crm.core.config import ActivityTemplate

__all__ = ["PLACEHOLDER_FAMILIES", "custom_activities", "render", "template_problems"]

PLACEHOLDER_FAMILIES = ("activity", "contact", "chat", "company", "conversation")
"""The first part a placeholder may have (rule 2)."""

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"^[a-z][a-z0-9_]*(?:\.[A-Za-z0-9_]+)+$")


def template_problems(template: str, path: str) -> list[Problem]:
    """Why ``template`` cannot render (rule 2); empty when it can."""
    problems: list[Problem] = []
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            problems.append(Problem(path, f"unmatched {token!r} (write {token * 2} for a brace)"))
            continue
        name = name.strip()
        if not _NAME.match(name) or name.split(".", 1)[0] not in PLACEHOLDER_FAMILIES:
            families = ", ".join(f"{f}.*" for f in PLACEHOLDER_FAMILIES)
            problems.append(Problem(path, f"unknown placeholder {{{name}}}: use {families}"))
    return problems


def _text(value: FieldValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def render(template: str, values: Mapping[str, FieldValue]) -> str:
    """``template`` with each placeholder replaced by its value (rule 3)."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        return token if name is None else _text(values.get(name.strip()))

    return _TOKEN.sub(replace, template)


def custom_activities(
    conversation: Conversation, templates: Mapping[str, ActivityTemplate]
) -> tuple[tuple[Activity, ...], tuple[Reason, ...]]:
    """The conversation's declared-kind activities, rendered (rule 4), and the warnings."""
    if not conversation.custom_activities:
        return (), ()
    base = conversation.field_values()
    closed_on = conversation.closed_at.date() if conversation.closed_at else None
    made: list[Activity] = []
    reasons: list[Reason] = []
    for item in conversation.custom_activities:
        template = templates.get(item.kind)
        if template is None:
            msg = f"activity {item.kind}:{item.id}: no such kind is declared; skipped"
            reasons.append(warning("activity_kind_unknown", msg))
            continue
        day = item.occurred_on or closed_on
        values = dict(base)
        values.update({f"activity.{k}": v for k, v in item.data.items()})
        values.update({"activity.kind": item.kind, "activity.id": item.id, "activity.date": day})
        made.append(
            Activity(
                item.kind,
                f"{item.kind}:{item.id}",
                render(template.subject, values).strip() or item.kind,
                render(template.body, values),
                day,
            )
        )
    return tuple(made), tuple(reasons)
