"""The operators' console: an ASGI application (Starlette) a host mounts beside its app.

.. warning::

   The console shows every integration's queue, visitor emails and CRM ids, and can send dead
   letters round again. It has **no open mode**: :func:`create_console` requires the host's
   ``authenticate`` hook, and every request (pages, the stylesheet, the retry action) is
   refused unless that hook names the operator. ``signals-crm console`` runs it for one person
   on 127.0.0.1 with a one-time login token.

Install with ``pip install 'signals-crm[console]'``. Pages (server-rendered, no JavaScript):
the integrations with counts per view; one integration's due, in-flight, scheduled, done and
dead syncs with filters and keyset pages; one conversation's explanation with the ledger's
facts and links into the CRM; the last runs' reports and API budget; a confirmed,
CSRF-protected retry of a dead letter. See ``docs/console.md``.

Mounting it in a Starlette (or FastAPI) application::

    from signals_crm.console import create_console, salesforce_links

    def operator(request):            # the host's own check: a session, an SSO header, ...
        user = request.scope.get("user")
        return user.email if user and user.is_staff else None

    app.mount("/signals", create_console("ledger.sqlite3", authenticate=operator,
                                         settings=settings,
                                         crm_links=salesforce_links(instance_url)))
"""

from __future__ import annotations

from signals_crm.console._app import CRMLinks, create_console, hubspot_links, salesforce_links
from signals_crm.console._security import TOKEN_LIFETIME, Authenticate

__all__ = [
    "TOKEN_LIFETIME",
    "Authenticate",
    "CRMLinks",
    "create_console",
    "hubspot_links",
    "salesforce_links",
]
