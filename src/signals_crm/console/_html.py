"""Server-rendered HTML without a template engine: every value is escaped unless it is
:class:`Safe` (built here from escaped parts), so no page can carry markup from the ledger."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import urlencode

__all__ = ["Safe", "esc", "layout", "link", "table", "tag", "url"]


class Safe(str):
    """Text that is already HTML (built from escaped parts)."""

    __slots__ = ()


Child = object


def esc(value: object) -> Safe:
    """``value`` as HTML text: escaped unless already :class:`Safe`; ``None`` as a dash."""
    if isinstance(value, Safe):
        return value
    if value is None:
        return Safe("&ndash;")
    if isinstance(value, datetime):
        value = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Safe(html.escape(str(value), quote=True))


def _children(children: Iterable[Child]) -> str:
    return "".join(esc(c) for c in children if c is not False and c != "")


def tag(element: str, /, *children: Child, **attributes: object) -> Safe:
    """``<name attributes>children</name>``; ``class_`` for ``class``; ``True`` for a flag."""
    parts = [element]
    for key, value in attributes.items():
        if value is None or value is False:
            continue
        attr = key.rstrip("_").replace("_", "-")
        parts.append(attr if value is True else f'{attr}="{esc(value)}"')
    head = " ".join(parts)
    if element in ("input", "meta", "link", "br"):
        return Safe(f"<{head}>")
    return Safe(f"<{head}>{_children(children)}</{element}>")


def url(base: str, path: str, query: Mapping[str, object] | None = None) -> str:
    """``base + path`` with ``query`` (empty values left out), for ``href`` (escaped there)."""
    clean = {k: str(v) for k, v in (query or {}).items() if v not in (None, "")}
    return base + path + (("?" + urlencode(clean)) if clean else "")


def link(text: Child, href: str, **attributes: object) -> Safe:
    return tag("a", text, href=href, **attributes)


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Child]], *, empty: str = "Nothing here."
) -> Safe:
    body = [tag("tr", *(tag("td", cell) for cell in row)) for row in rows]
    if not body:
        return tag("p", empty, class_="empty")
    return tag(
        "table",
        tag("thead", tag("tr", *(tag("th", h) for h in headers))),
        tag("tbody", *body),
    )


def layout(
    *,
    title: str,
    base: str,
    user: str | None,
    body: Iterable[Child],
    nav: Sequence[tuple[str, str]] = (),
) -> str:
    """A whole page: the shared header (with the authentication warning's short form)."""
    crumbs = [link("signals_crm console", base + "/")]
    crumbs.extend(link(text, href) for text, href in nav)
    header = tag(
        "header",
        tag("nav", *_join(crumbs, Safe(" / "))),
        tag("span", f"signed in as {user}" if user else "", class_="user"),
    )
    page = tag(
        "html",
        tag(
            "head",
            Safe('<meta charset="utf-8">'),
            Safe('<meta name="viewport" content="width=device-width, initial-scale=1">'),
            tag("title", f"{title} - signals_crm console"),
            Safe(f'<link rel="stylesheet" href="{esc(base)}/static/console.css">'),
        ),
        tag("body", header, tag("main", tag("h1", title), *body)),
        lang="en",
    )
    return "<!DOCTYPE html>\n" + page


def _join(items: Sequence[Safe], separator: Safe) -> list[Safe]:
    out: list[Safe] = []
    for i, item in enumerate(items):
        if i:
            out.append(separator)
        out.append(item)
    return out


STYLESHEET = """
:root { --fg: #1d2430; --muted: #5b6575; --line: #d9dee7; --bg: #f6f8fb; --accent: #1f5fbf;
        --bad: #b3261e; --warn: #8a5a00; --ok: #1e7a3c; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--fg); background: var(--bg); }
header { display: flex; justify-content: space-between; align-items: center;
         padding: .6rem 1.2rem; background: #fff; border-bottom: 1px solid var(--line); }
header nav a { color: var(--fg); font-weight: 600; text-decoration: none; }
header .user { color: var(--muted); font-size: .9rem; }
main { max-width: 1180px; margin: 0 auto; padding: 1rem 1.2rem 3rem; }
h1 { font-size: 1.45rem; margin: .6rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 .6rem; }
a { color: var(--accent); }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: .42rem .6rem; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: #eef1f6; font-weight: 600; font-size: .85rem; color: var(--muted); }
td { font-size: .92rem; word-break: break-word; }
.empty { color: var(--muted); font-style: italic; }
.cards { display: flex; flex-wrap: wrap; gap: .7rem; margin: .4rem 0 1rem; }
.card { flex: 1 1 150px; background: #fff; border: 1px solid var(--line); border-radius: 6px;
        padding: .7rem .9rem; text-decoration: none; color: var(--fg); }
.card .n { display: block; font-size: 1.6rem; font-weight: 700; }
.card.dead .n { color: var(--bad); }
.card.current { border-color: var(--accent); box-shadow: inset 0 -3px 0 var(--accent); }
.warning { background: #fff4e0; border: 1px solid #f0c36d; border-radius: 6px;
           padding: .8rem 1rem; margin: 0 0 1rem; }
.notice { background: #e7f5ec; border: 1px solid #9ad0ad; border-radius: 6px;
          padding: .6rem 1rem; margin: 0 0 1rem; }
.error { background: #fdecea; border: 1px solid #f1a9a3; border-radius: 6px;
         padding: .6rem 1rem; margin: 0 0 1rem; }
form.filters { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; background: #fff;
               border: 1px solid var(--line); border-radius: 6px; padding: .7rem .9rem;
               margin-bottom: 1rem; }
form.filters label { display: flex; flex-direction: column; font-size: .8rem;
                     color: var(--muted); }
input { font: inherit; padding: .3rem .45rem; border: 1px solid var(--line); border-radius: 4px; }
button { font: inherit; padding: .4rem .9rem; border-radius: 4px; border: 1px solid var(--accent);
         background: var(--accent); color: #fff; cursor: pointer; }
button.danger { background: var(--bad); border-color: var(--bad); }
.pager { margin: .8rem 0; display: flex; gap: 1rem; }
.status { display: inline-block; padding: .1rem .5rem; border-radius: 999px; font-size: .85rem;
          background: #eef1f6; }
.status.failed, .status.dead { background: #fdecea; color: var(--bad); }
.status.synced, .status.done { background: #e7f5ec; color: var(--ok); }
.status.waiting, .status.due { background: #fff4e0; color: var(--warn); }
code { font-size: .88em; background: #eef1f6; padding: 0 .25em; border-radius: 3px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem;
           background: #fff; border: 1px solid var(--line); border-radius: 6px;
           padding: .7rem .9rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
"""
