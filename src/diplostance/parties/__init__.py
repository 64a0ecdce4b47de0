"""Who to whom: the actor and target of every stance (``data/GUIDELINES.md`` §7).

:class:`Attributor` finds them for whole documents (:mod:`.extract`), :mod:`.gazetteer` names
the parties, :mod:`.gold` reads the gold annotation and scores a method against it."""
from .extract import METHODS, Attributor, Party, Roles, load_spacy
from .gazetteer import Mention, find_mentions

__all__ = ["METHODS", "Attributor", "Mention", "Party", "Roles", "find_mentions", "load_spacy"]
