"""The demo network of ``make demo``: ten organisations, a demo CA, sample exports.

``network.py`` builds it; ``data/`` holds the synthetic exports (synthetic CPRs only).
May import everything below ``stafet.night``.
"""
