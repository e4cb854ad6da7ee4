"""Operations on the network and on its Prefect: what operations run once or by hand.

``membership`` (add a member, preview what it will receive), ``notify`` (mail operations
about a failed run: the e-mail block and the automation), ``ephemeral`` (``stafet run``'s
temporary Prefect server, bound to the run's life), ``partitions`` (``stafet run
nightly-partitioned``: the partitioned night, or parts of it, started on the server).

May import everything below ``stafet.night`` (core, context, duties, keys).
"""
