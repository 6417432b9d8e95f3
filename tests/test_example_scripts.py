"""The example scripts run and say what they promise."""

from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_plan_and_explain_example(capsys):
    """The core example plans four conversations and explains each."""
    runpy.run_path(str(EXAMPLES / "plan_and_explain.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "Conversation c-1: due\n  will sync (create)" in out
    assert "update_person [c-2:update] FirstName: 'Robert' → 'Bob'" in out
    assert "[criteria_not_met]" in out
    assert "[conversation_open]" in out
    assert "[invalid_email]" in out
