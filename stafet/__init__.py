"""stafet: data integration and secure exchange for Danish youth education networks.

The pipeline runs one way, one package per stage (the README draws it)::

    connectors → mappings → store → ingest / duties → packages → transports → exchange

``stafet.core`` is the base every stage may import; ``stafet.context`` wires one node
(network, store, keys, vault); ``stafet.night`` holds the stages of a night as plain
functions for ``flows/``; ``stafet.cli`` is the command line. This package itself
imports nothing: it only names the whole.
"""
