"""Test support that ships with the library: sandboxes, an in-memory CRM, strategies, a kit."""

from signals_crm.testing.memory import InMemoryCRM, MemoryMembership, MemoryTask, TickingClock

__all__ = ["InMemoryCRM", "MemoryMembership", "MemoryTask", "TickingClock"]
