"""The pure core: decisions and plans, with their reasons. No IO, no clock, no randomness.

In the data flow ``host → engine → flows → core → plan → adapter → CRM`` (``docs/concepts.md``)
the core is what the flows ask: they hand it conversations, answer the lookups its generators
yield, and receive plans. It imports neither the flows, the engine, an adapter nor a ledger.
"""
