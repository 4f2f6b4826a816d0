"""The pictures' legends: scale bar length, the overlay caption's threshold, the timeline chart's axes and labels."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sitewatch.pipeline.detect import overlay_caption
from sitewatch.report.figures import nice_length, timeline_chart


@pytest.mark.parametrize(("span", "length"), [(600.0, 100.0), (4000.0, 500.0), (1000.0, 200.0), (37.0, 5.0)])
def test_scale_bar_is_a_round_fifth_of_the_panel(span, length):
    assert nice_length(span) == length


def test_overlay_caption_gives_the_threshold_used_not_rounded():
    result = SimpleNamespace(changes=SimpleNamespace(threshold=0.45))
    caption = overlay_caption(result)
    assert "threshold 0.45)" in caption and "0 to 1.35" in caption and "score below 0.2" in caption


def _rows(areas):
    return [
        {
            "date": f"2023-0{k + 1}-01",
            "railcars_total": total,
            "railcars_uncertainty": 1.5,
            "track:T1": total,
            "new_area_m2": area,
            "removed_area_m2": 0.0,
        }
        for k, (total, area) in enumerate(zip([20, 41, 73], areas))
    ]


def test_timeline_chart_has_no_structure_axis_when_nothing_changed():
    fig = timeline_chart(_rows([0.0, 0.0, 0.0]), ["T1"], title="t")
    assert len(fig.axes) == 1
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "no structure changed since 2023-01-01" in labels
    fig = timeline_chart(_rows([0.0, 120.0, 300.0]), ["T1"], title="t")
    assert len(fig.axes) == 2 and "structure area" in fig.axes[1].get_ylabel()


def test_timeline_totals_sit_above_their_error_bars():
    fig = timeline_chart(_rows([0.0, 0.0, 0.0]), ["T1"], title="t")
    notes = [a for a in fig.axes[0].texts if a.get_text() in ("20", "41", "73")]
    assert [a.xy for a in notes] == [(0, 21.5), (1, 42.5), (2, 74.5)]  # total + uncertainty, then 6 pt up
    assert all(a.get_position() == (0, 6) and a.get_ha() == "center" for a in notes)
