"""Test support that ships with the library: sandboxes, an in-memory CRM, strategies, a kit."""
