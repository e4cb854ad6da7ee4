"""Charts are inline SVG, labelled for screen readers, deterministic and free of remote links."""

from __future__ import annotations

from lxml import etree

from stafet.reports.charts import bar_svg, line_svg


def test_bar_chart_is_inline_svg_with_its_labels_as_text() -> None:
    svg = bar_svg({"Skive": 12, "Viborg": 30}, title="Afbrud pr. kommune", y_label="Antal")
    root = etree.fromstring(svg.encode())
    assert root.tag.endswith("svg")
    assert root.get("role") == "img" and root.get("aria-label") == "Afbrud pr. kommune"
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "Skive" in texts and "Viborg" in texts and "Afbrud pr. kommune" in texts
    links = [v for el in root.iter() for k, v in el.attrib.items() if k.endswith("href") or k == "src"]
    assert all(v.startswith("#") for v in links)  # nothing fetched from elsewhere


def test_line_chart_is_deterministic_and_escapes_its_label() -> None:
    series = {"easy_a": [("2026-11-02", 131.0), ("2026-11-01", 120.0)], "gymnasium": [("2026-11-01", 7.0)]}
    a = line_svg(series, title='Rækker <pr> "nat"')
    b = line_svg(series, title='Rækker <pr> "nat"')
    assert a == b
    root = etree.fromstring(a.encode())
    assert root.get("aria-label") == 'Rækker <pr> "nat"'
    assert len(list(root.iter("{http://www.w3.org/2000/svg}path"))) > 2
