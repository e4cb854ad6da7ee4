"""The send partitions' batches (:func:`stafet.night.send_batches`): a municipality's
recipients together, the pending handovers balanced, every recipient in exactly one batch."""

from __future__ import annotations

import random

from stafet.night import balanced_batches


def _national(rng: random.Random) -> tuple[dict[str, int], dict[str, str]]:
    weights, muni = {}, {}
    for m in range(98):
        code = f"{101 + m * 7}"
        for org in (f"uu-{code}", f"jobcenter-{code}", f"{code}001"):
            if rng.random() < 0.9:
                weights[org], muni[org] = rng.randrange(1, 400), code
    return weights, muni


def test_a_municipalitys_recipients_share_a_batch_and_the_batches_are_balanced():
    rng = random.Random(21)
    for n in (2, 4, 8):
        weights, muni = _national(rng)
        batches = balanced_batches(weights, muni, n)
        assert len(batches) == n
        assert sorted(k for b in batches for k in b) == sorted(weights)        # each exactly once
        assert all({muni[k] for k in b}.isdisjoint({muni[k] for k in c})      # no municipality split
                   for i, b in enumerate(batches) for c in batches[i + 1:])
        loads = [sum(weights[k] for k in b) for b in batches]
        biggest_group = max(sum(w for k, w in weights.items() if muni[k] == m) for m in set(muni.values()))
        assert max(loads) - min(loads) <= biggest_group                       # greedy: within one group
        assert all(b == sorted(b) for b in batches)


def test_fewer_municipalities_than_batches_still_spreads_the_recipients():
    weights = {"uu-viborg": 5, "779008": 3, "751001": 2, "uu-skive": 4}
    muni = {"uu-viborg": "791", "779008": "791", "751001": "791", "uu-skive": "779"}
    batches = balanced_batches(weights, muni, 4)
    assert sorted(map(len, batches)) == [1, 1, 1, 1]
    assert balanced_batches(weights, muni, 2) == [["751001", "779008", "uu-viborg"], ["uu-skive"]]
    assert balanced_batches({}, {}, 4) == []
