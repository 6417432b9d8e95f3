"""The Python code in README.md and docs/*.md runs as written.

How a page is run (the rules a docs writer can rely on):

1. Every ```` ```python ```` block of a page runs, in order, in one namespace per page, in an
   empty temporary working directory, so a later block may use what an earlier one made.
2. A block whose lines start with ``>>>`` is a doctest: its shown output (or exception) must
   match.
3. A block that cannot run here (it needs a real CRM, or it is an excerpt) opts out with the
   comment ``<!-- not run: the reason -->`` on the line just above its fence. The reason is
   required.
4. Setup the reader need not see goes in a hidden block, run in its place in the sequence:
   ``<!-- run: python`` on one line, the code, then ``-->`` on a line of its own.
"""

from __future__ import annotations

import doctest
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

PAYLOAD = {
    "event": "conversation-closed",
    "chat": {
        "transcript": "Visitor: Hi\nPriya: Booked you for Tuesday.",
        "meeting_event": {"id": 48213, "name": "Demo", "date": "2026-11-24"},
        "user_emails": {"meeting_scheduled": "priya@vendor.test"},
    },
    "contact": {"first_name": "Lena", "last_name": "Okafor", "email": "lena@brightfield.test"},
}
# What a page may take as given (the host's side of the story), by page name.
GIVEN: dict[str, dict[str, object]] = {
    "tutorial.md": {"request_body": json.dumps(PAYLOAD).encode()},
}

FENCE = re.compile(r"^```python\s*$")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>.*?)\s*-->\s*$")
HIDDEN_START = re.compile(r"^<!--\s*run:\s*python\s*$")


@attrs.frozen
class Block:
    page: str
    line: int  # the first line of code, counted from 1
    code: str
    not_run: str | None = None  # the reason, for a block that opts out
    hidden: bool = False

    @property
    def doctest(self) -> bool:
        return self.code.lstrip().startswith(">>>")


def blocks(text: str, page: str) -> Iterator[Block]:
    """The page's Python blocks (shown and hidden) with their opt-out reasons."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        hidden = bool(HIDDEN_START.match(line))
        if FENCE.match(line) or hidden:
            end_marker = "-->" if hidden else "```"
            start = index + 1
            end = start
            while end < len(lines) and lines[end].strip() != end_marker:
                end += 1
            if end == len(lines):
                raise AssertionError(f"{page}:{index + 1}: block never closed")
            previous = lines[index - 1] if index else ""
            marker = NOT_RUN.match(previous)
            if marker and not marker["reason"]:
                raise AssertionError(f"{page}:{index}: 'not run' needs a reason")
            code = "\n".join(lines[start:end]) + "\n"
            yield Block(page, start + 1, code, marker["reason"] if marker else None, hidden)
            index = end
        index += 1


def run_page(path: Path) -> dict[str, object]:
    """Run a page's blocks in order; return the namespace they built."""
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    namespace.update(GIVEN.get(path.name, {}))
    for block in blocks(path.read_text(), path.name):
        if block.not_run is not None:
            continue
        if block.doctest:
            run_doctest(block, namespace)
        else:
            # Pad so that a traceback names the line of the page itself.
            source = "\n" * (block.line - 1) + block.code
            exec(compile(source, str(path), "exec"), namespace)  # noqa: S102  # our own docs
    return namespace


def run_doctest(block: Block, namespace: dict[str, object]) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.code, namespace, block.page, block.page, block.line - 1)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    output: list[str] = []
    runner.run(test, out=output.append, clear_globs=False)
    assert runner.failures == 0, "".join(output)


@pytest.mark.parametrize("path", PAGES, ids=[p.name for p in PAGES])
def test_page_runs(path, tmp_path, monkeypatch):
    """Every Python block of the page that does not opt out runs without error."""
    monkeypatch.chdir(tmp_path)
    run_page(path)


def test_pages_run_most_of_their_code():
    """Opting out is the exception: most blocks of the docs run, and each says why not."""
    everything = [b for path in PAGES for b in blocks(path.read_text(), path.name)]
    shown = [b for b in everything if not b.hidden]
    skipped = [b for b in shown if b.not_run is not None]
    assert all(b.not_run for b in skipped)
    assert len(skipped) * 2 < len(shown), [f"{b.page}:{b.line} {b.not_run}" for b in skipped]


def test_block_reader_follows_the_rules():
    """Fences, opt-out markers, hidden setup and doctests are read as the rules say."""
    text = """# Page
```python
x = 1
```
<!-- not run: needs a real CRM -->
```python
connect()
```
<!-- run: python
y = x + 1
-->
```python
>>> y
2
```
```console
$ not python
```
"""
    found = list(blocks(text, "page.md"))
    assert [(b.line, b.code, b.not_run, b.hidden, b.doctest) for b in found] == [
        (3, "x = 1\n", None, False, False),
        (7, "connect()\n", "needs a real CRM", False, False),
        (10, "y = x + 1\n", None, True, False),
        (13, ">>> y\n2\n", None, False, True),
    ]
    with pytest.raises(AssertionError, match="needs a reason"):
        list(blocks("<!-- not run: -->\n```python\nx\n```\n", "page.md"))


def test_a_failing_doctest_fails_the_page(tmp_path):
    """A doctest whose output differs from the page is reported, not passed over."""
    page = tmp_path / "page.md"
    page.write_text("```python\n>>> 1 + 1\n3\n```\n")
    with pytest.raises(AssertionError, match="Expected"):
        run_page(page)


def test_tutorial_syncs_the_visitor(tmp_path, monkeypatch):
    """Sections 1 to 6 of the tutorial run in order and sync the visitor."""
    monkeypatch.chdir(tmp_path)
    namespace = run_page(ROOT / "docs" / "tutorial.md")
    report = namespace["report"]
    assert report.total == 0  # run right after closing: the 30-minute delay has not passed
    outcome = namespace["outcome"]  # the manual sync of section 6 created the Lead, no tasks
    door = namespace["door"]
    assert door.people_with_email("lena@brightfield.test") == [outcome.person_id]
    assert door.task_markers(outcome.person_id) == []
    integration = namespace["integration"]
    later = integration.run_due(datetime.now(UTC) + timedelta(minutes=31))
    assert later.counts == {"created": 1}  # the automatic sync finishes the same Lead
    assert door.people_with_email("lena@brightfield.test") == [outcome.person_id]
    assert len(door.task_markers(outcome.person_id)) == 2
    fields = door.org.data.records["lead"][outcome.person_id]
    assert fields["OwnerId"] == namespace["priya"]
    namespace["http"].close()
    integration.ledger.close()
