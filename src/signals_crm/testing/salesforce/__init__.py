"""A local Salesforce: an in-memory org speaking the REST subset ``signals_crm`` uses.

Use it in-process (``httpx.Client(transport=org.transport())``), over real HTTP on loopback
(``with org.serve() as url: ...``) or from the command line (``signals-crm sandbox salesforce
--port N``, which calls :func:`serve`). :class:`SalesforceBackdoor` seeds and reads it directly
(the conformance kit's ``Backdoor``). See ``docs/salesforce.md``.
"""

from signals_crm.testing._loopback import ConnectionDropped, LoopbackServer
from signals_crm.testing.salesforce._backdoor import SalesforceBackdoor
from signals_crm.testing.salesforce._ids import is_well_formed, to_18
from signals_crm.testing.salesforce._org import FAULT_KINDS, Faults, LocalSalesforce
from signals_crm.testing.salesforce._records import DuplicateRule
from signals_crm.testing.salesforce._schema import FieldDef
from signals_crm.testing.salesforce._server import (
    LOCAL_CLIENT_ID,
    LOCAL_CLIENT_SECRET,
    running_server,
    serve,
)

__all__ = [
    "FAULT_KINDS",
    "LOCAL_CLIENT_ID",
    "LOCAL_CLIENT_SECRET",
    "ConnectionDropped",
    "DuplicateRule",
    "Faults",
    "FieldDef",
    "LocalSalesforce",
    "LoopbackServer",
    "SalesforceBackdoor",
    "is_well_formed",
    "running_server",
    "serve",
    "to_18",
]
