"""rules.yaml is the only copy of its numbers: the code reads them from the loaded rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from stafet.core.errors import ConfigError
from stafet.duties.routing import concern_window_days, default_rules, load_rules

DUTIES = Path(__file__).parents[2] / "stafet" / "duties"


def test_the_concern_window_comes_from_rules_yaml(tmp_path: Path) -> None:
    shipped = yaml.safe_load((DUTIES / "rules.yaml").read_text(encoding="utf-8"))
    rule = next(r for r in shipped["rules"] if "concern_flag" in r["kinds"])  # the first one routing reads
    assert concern_window_days() == rule["when"]["concern_max_age_days"]
    rule["when"]["concern_max_age_days"] = 30
    other = tmp_path / "rules.yaml"
    other.write_text(yaml.safe_dump(shipped, allow_unicode=True), encoding="utf-8")
    assert concern_window_days(load_rules(other)) == 30
    for r in shipped["rules"]:
        r["when"].pop("concern_max_age_days", None)
    other.write_text(yaml.safe_dump(shipped, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="concern_max_age_days"):
        concern_window_days(load_rules(other))


def test_no_rule_value_is_written_again_in_the_duties_code() -> None:
    numbers = {str(v) for r in default_rules() for v in r.when.values() if isinstance(v, int)}
    assert numbers  # age_under, concern_max_age_days
    for path in DUTIES.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for n in numbers:
            assert not re.search(rf"timedelta\(days={n}\)", text), f"{path.name} repeats {n} days"
