"""The base: errors, CPR numbers and their redaction, the canonical models, the vault, config, logs.

Also the mechanisms every stage shares: ``secrets`` (the one lookup of a runtime secret:
variable, Prefect Secret block, 0600 file) and ``workers`` (the one pool of worker processes).

Every other package may import these modules; they import nothing of stafet's outside
``stafet.core`` (and within it: ``redaction`` ← ``errors`` ← ``cpr`` ← ``models``).
"""
