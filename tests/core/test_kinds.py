"""The registry of record kinds is the one list: the models, the packages' schema enum, the Danish
names and routing's history scopes all agree with it."""

from __future__ import annotations

import json
from importlib import resources

from stafet.core import models
from stafet.core.models import HISTORY_SCOPES, KIND_DANISH, RECORD_KINDS, RECORD_TYPES, Record


def _schema_enum() -> list[str]:
    doc = json.loads(resources.files("stafet.packages").joinpath("handover.schema.json").read_text())
    return list(doc["properties"]["records"]["items"]["properties"]["kind"]["enum"])


def test_the_handover_schema_enum_is_the_registry() -> None:
    assert _schema_enum() == [k.name for k in RECORD_KINDS]


def test_every_concrete_record_class_is_registered_once() -> None:
    concrete = {c for c in vars(models).values()
                if isinstance(c, type) and issubclass(c, Record) and c.kind != "record"
                and not any(issubclass(o, c) and o is not c for o in vars(models).values()
                            if isinstance(o, type))}
    assert concrete == {k.model for k in RECORD_KINDS}
    assert len({k.name for k in RECORD_KINDS}) == len(RECORD_KINDS)
    assert {k.name: k.model for k in RECORD_KINDS} == RECORD_TYPES


def test_danish_names_and_history_scopes_come_from_the_registry() -> None:
    from stafet.duties.routing import SCOPE_KINDS
    from stafet.packages.package import KIND_DA

    assert KIND_DA == KIND_DANISH and set(KIND_DA) == set(RECORD_TYPES) and all(KIND_DA.values())
    assert SCOPE_KINDS == HISTORY_SCOPES
    assert SCOPE_KINDS == {"uddannelsesplan": "education_plan", "paalaeg": "education_order",
                           "overgang": "transition_case", "afbrudsaarsag": "dropout",
                           "fravaer": "concern_flag"}
    assert set(SCOPE_KINDS.values()) <= set(RECORD_TYPES)
