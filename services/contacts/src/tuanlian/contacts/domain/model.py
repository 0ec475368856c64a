"""Contacts' aggregates, one module each: organisations (``orgs``), cadres and youths
(``people``), contact links (``links``) and interactions (``interactions``); re-exported here
for existing importers.

Pure: no I/O. Each command method checks the League's rules against the state rebuilt from
events and records new events; the application layer loads, calls and saves.
"""

from __future__ import annotations

from tuanlian.contacts.domain.interactions import MIN_SUMMARY_CHARS, Interaction
from tuanlian.contacts.domain.links import ContactLink
from tuanlian.contacts.domain.orgs import Org
from tuanlian.contacts.domain.people import Cadre, Youth

__all__ = ["MIN_SUMMARY_CHARS", "Cadre", "ContactLink", "Interaction", "Org", "Youth"]
