"""The service's routes, one ``APIRouter`` per audience:

* :mod:`.wellknown` — discovery, the signed checkpoint and the key under ``/.well-known/``, the page and its files;
* :mod:`.public` — checkpoints, consistency proofs, site counts, the session and the complaint form: anyone;
* :mod:`.ownership` — proving control of a domain for a holder's token;
* :mod:`.holder` — a domain's records, proofs, evidence, export and complaints: its holder (or the operator);
* :mod:`.admin` — the operator's view of every complaint.
"""
