"""Test support that ships with the library: sandboxes, an in-memory CRM, strategies, a kit."""

from signals_crm.testing._loopback import ConnectionDropped, LoopbackServer
from signals_crm.testing.memory import InMemoryCRM, MemoryMembership, MemoryTask, TickingClock

__all__ = [
    "ConnectionDropped",
    "InMemoryCRM",
    "LoopbackServer",
    "MemoryMembership",
    "MemoryTask",
    "TickingClock",
]
