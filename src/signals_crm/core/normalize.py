"""The two matching keys of the package: one for emails, one for domains.

Every place that compares emails or domains (the core's matching and ownership rules, both
built-in adapters, the in-memory CRM, the sandboxes) uses these two functions, so that a
visitor, a lookup and a stored record can never disagree about what "the same" means.

1. **Email**: surrounding white space removed, lower-cased. ``" Ada@Example.COM "`` and
   ``"ada@example.com"`` are the same person. Nothing else is changed (no plus-address or dot
   folding: the CRMs do not fold them either).
2. **Domain** (a company domain, or a website as CRMs store it): white space removed,
   lower-cased, then cut down to the host: a scheme (``https://``) goes, so do user info
   (``user@``), a path, query or fragment, a port, a trailing dot and a leading ``www.``.
   ``"https://WWW.Acme.com:443/about?x"`` becomes ``"acme.com"``. Subdomains stay:
   ``eu.acme.com`` is not ``acme.com`` (an adapter decides whether a subdomain matches).
3. Both are idempotent: normalising a key again gives the same key.
"""

from __future__ import annotations

__all__ = ["normalize_domain", "normalize_email"]


def normalize_email(email: str) -> str:
    """The matching key of an email: surrounding spaces removed, lower-cased.

    Emails that differ only in case or surrounding spaces are the same person.
    """
    return email.strip().lower()


def normalize_domain(domain: str) -> str:
    """The matching key of a domain or website: its bare host, lower-case, no ``www.``."""
    key = _host(domain)
    while (again := _host(key)) != key:  # each pass only shortens: this ends
        key = again
    return key


def _host(text: str) -> str:
    text = text.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    for stop in "/?#":
        text = text.split(stop, 1)[0]
    text = text.rsplit("@", 1)[-1]
    if text.count(":") == 1:  # host:port (an IPv6 literal has more colons)
        text = text.split(":", 1)[0]
    return text.strip().rstrip(".").removeprefix("www.")
