"""Leaflet inlined from sitewatch's vendored copy, and the map controls sitewatch adds to folium maps.

* :func:`inline_leaflet` - Leaflet's JavaScript and CSS (``sitewatch/vendor/leaflet``, BSD-2)
  written into the page instead of folium's CDN links, and folium's other libraries (jQuery,
  Bootstrap, Font Awesome) left out: a map loads nothing from a network;
* :func:`legend_control` - what each colour and line means;
* :func:`side_by_side` - a before/after swipe: a slider across the map shows one image left of
  it and the other right of it;
* :func:`cursor_position` - the cursor's latitude and longitude.

Every control is written in plain Leaflet (no plugin to fetch); texts reach the page escaped.
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from typing import Any

LEAFLET_DIR = "vendor/leaflet"


def _vendored(name: str) -> str:
    return resources.files("sitewatch").joinpath(f"{LEAFLET_DIR}/{name}").read_text("utf-8")


def inline_leaflet(fmap: Any) -> None:
    """Put Leaflet's JS and CSS into the map's page and drop every link folium would add."""
    from branca.element import Element

    fmap.default_js = []
    fmap.default_css = []
    header = fmap.get_root().header
    header.add_child(Element(f"<style>{_vendored('leaflet.css')}</style>"), name="leaflet_css", index=0)
    header.add_child(Element(f"<script>{_vendored('leaflet.js')}</script>"), name="leaflet", index=0)


def _macro(script: str, **attrs: Any) -> Any:
    """A folium element whose script is ``script`` (a Jinja macro body; ``this`` is the element)."""
    from branca.element import MacroElement
    from jinja2 import Template

    element = MacroElement()
    element._template = Template("{% macro script(this, kwargs) %}" + script + "{% endmacro %}")
    for k, v in attrs.items():
        setattr(element, k, v)
    return element


LEGEND_CSS = (
    "background:rgba(255,255,255,.9);padding:6px 8px;border-radius:4px;font:12px/1.5 sans-serif;"
    "box-shadow:0 1px 4px rgba(0,0,0,.4)"
)


def legend_html(title: str, items: list[tuple[str, str, str]], gradient: tuple[str, str, str] | None = None) -> str:
    """The legend's HTML: (label, colour, kind) rows, kind ``fill``, ``dashed`` or ``line``; an optional
    colour scale (css gradient, low label, high label)."""
    rows = []
    for label, colour, kind in items:
        border = "dashed" if kind == "dashed" else "solid"
        fill = "transparent" if kind in ("dashed", "line") else colour + "55"
        height = "0" if kind == "line" else "10px"
        swatch = (
            f'<span style="display:inline-block;width:16px;height:{height};margin-right:6px;vertical-align:middle;'
            f'border:2px {border} {escape(colour)};background:{escape(fill)}"></span>'
        )
        rows.append(f"<div>{swatch}{escape(label)}</div>")
    if gradient:
        css, low, high = gradient
        rows.append(
            f'<div style="margin-top:4px">change score<br><span style="display:inline-block;width:120px;height:10px;'
            f'background:linear-gradient(to right,{escape(css)})"></span><br>'
            f'<span style="float:left">{escape(low)}</span><span style="float:right">{escape(high)}</span></div>'
        )
    return f'<div class="sitewatch-legend" style="{LEGEND_CSS}"><b>{escape(title)}</b>{"".join(rows)}</div>'


def legend_control(html: str, position: str = "bottomright") -> Any:
    """A Leaflet control holding ``html`` (made by :func:`legend_html`)."""
    script = (
        "var {{ this.get_name() }} = L.control({position: {{ this.position|tojson }}});"
        "{{ this.get_name() }}.onAdd = function () {"
        " var div = L.DomUtil.create('div', 'sitewatch-legend-control'); div.innerHTML = {{ this.html|tojson }};"
        " L.DomEvent.disableClickPropagation(div); return div; };"
        "{{ this.get_name() }}.addTo({{ this._parent.get_name() }});"
    )
    return _macro(script, html=html, position=position)


_SWIPE_JS = """
(function () {
  var map = {{ this._parent.get_name() }};
  var left = {{ this.left.get_name() }}, right = {{ this.right.get_name() }};
  var box = L.DomUtil.create('div', 'sitewatch-swipe', map.getContainer());
  box.style.cssText = 'position:absolute;left:0;right:0;bottom:0;top:0;pointer-events:none;z-index:800';
  var line = L.DomUtil.create('div', 'sitewatch-swipe-line', box);
  line.style.cssText = 'position:absolute;top:0;bottom:0;width:3px;margin-left:-1px;background:#fff;'
    + 'box-shadow:0 0 4px #000';
  var range = L.DomUtil.create('input', 'sitewatch-swipe-range', box);
  range.type = 'range'; range.min = 0; range.max = 1; range.step = 'any'; range.value = 0.5;
  range.title = {{ this.title|tojson }};
  range.style.cssText = 'position:absolute;left:0;width:100%;bottom:48px;margin:0;pointer-events:auto;opacity:.8';
  L.DomEvent.disableClickPropagation(range);
  L.DomEvent.on(range, 'mousedown touchstart', function () { map.dragging.disable(); });
  L.DomEvent.on(document, 'mouseup touchend', function () { map.dragging.enable(); });
  function clip() {
    var x = range.value * map.getSize().x, rect = map.getContainer().getBoundingClientRect();
    line.style.left = x + 'px';
    [[left, true], [right, false]].forEach(function (pair) {
      var img = pair[0].getElement && pair[0].getElement();
      if (!img) { return; }
      var r = img.getBoundingClientRect(), cut = rect.left + x - r.left;
      img.style.clipPath = pair[1] ? 'inset(0 ' + Math.max(0, r.width - cut) + 'px 0 0)'
                                    : 'inset(0 0 0 ' + Math.max(0, cut) + 'px)';
    });
  }
  L.DomEvent.on(range, 'input change', clip);
  map.on('move zoom zoomend resize viewreset layeradd', clip);
  setTimeout(clip, 0);
})();
"""


def side_by_side(left: Any, right: Any, title: str) -> Any:
    """A swipe between two image overlays: ``left`` shows left of the slider, ``right`` right of it."""
    return _macro(_SWIPE_JS, left=left, right=right, title=title)


def cursor_position() -> Any:
    """The cursor's latitude and longitude (6 decimals, about 0.1 m) in the map's lower left corner."""
    script = (
        "(function () { var map = {{ this._parent.get_name() }}; var c = L.control({position: 'bottomleft'});"
        " c.onAdd = function () { this._div = L.DomUtil.create('div', 'sitewatch-cursor');"
        f" this._div.style.cssText = {json.dumps(LEGEND_CSS)}; this._div.innerHTML = 'move the cursor over the map';"
        " return this._div; }; c.addTo(map);"
        " map.on('mousemove', function (e) { c._div.innerHTML = 'lat ' + e.latlng.lat.toFixed(6) +"
        " ', lon ' + e.latlng.lng.toFixed(6); }); })();"
    )
    return _macro(script)
