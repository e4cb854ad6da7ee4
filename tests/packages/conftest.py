"""The small test network of ``tests/testnet.py`` for these tests (fixtures ``net``, ``net_template``)."""

from testnet import net, net_template  # noqa: F401  (fixtures)
