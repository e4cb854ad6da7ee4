"""Why *this* row breaks its rule, in Danish, from the source's declared checks.

The console's name for :mod:`stafet.reports.rule_text` (one function for the CLI, the
steward's report and the console): the row's own values, the allowed list, never a CPR.
"""

from __future__ import annotations

from stafet.reports.rule_text import Explanation, explain, shown

__all__ = ["Explanation", "explain", "shown"]
