"""Event contracts published by the wishes service on the ``WISHES`` stream.

Wish, Youth Voice, rating and ballot events are added by the wishes issue; the stream is declared
from the start so consumers can bind to it.
"""

from tuanlian.shared.events import ContractRegistry

WISHES = ContractRegistry("wishes")
