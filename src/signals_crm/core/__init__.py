"""The pure core: decisions and plans, with their reasons. No IO, no clock, no randomness."""
