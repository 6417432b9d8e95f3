"""signals_crm: chat visitors to CRM leads, tasks and campaigns, decided by a pure core."""
