"""The PCP report in HTML (care/pcp_report.py): as a page for a browser or an EHR's document viewer, with the
same title, heading and sections as the PDF in one self-contained page (no scripts, no outside resources);
and each section's narrative for the FHIR document."""

from __future__ import annotations

import html
from collections.abc import Sequence

from fhir_server.care.pcp_report_pdf import SectionText

_STYLE = ("body{font-family:Helvetica,Arial,sans-serif;max-width:46em;margin:2em auto;font-size:14px;color:#111}"
          "h1{font-size:20px;margin-bottom:.2em}.heading{color:#555;font-size:12px}"
          "h2{font-size:15px;background:#e8eef5;padding:.2em .4em;margin-top:1.2em}"
          "footer{color:#777;font-size:11px;font-style:italic;margin-top:2em}")


def render(title: str, heading: str, sections: Sequence[SectionText], footer: str) -> str:
    def section(s: SectionText) -> str:
        return f"<section><h2>{html.escape(s.title)}</h2>{_body(s.paragraphs, s.items)}</section>"

    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f'<p class="heading">{html.escape(heading)}</p>{"".join(section(s) for s in sections)}'
            f"<footer>{html.escape(footer)}</footer></body></html>")


def narrative(paragraphs: Sequence[str], items: Sequence[str]) -> str:
    """A section's narrative for its Composition (narrative.html: XHTML, in a div of the XHTML namespace,
    using only the elements FHIR allows)."""
    return f'<div xmlns="http://www.w3.org/1999/xhtml">{_body(paragraphs, items)}</div>'


def _body(paragraphs: Sequence[str], items: Sequence[str]) -> str:
    listed = "".join(f"<li>{html.escape(i)}</li>" for i in items)
    return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs) + (f"<ul>{listed}</ul>" if listed else "")
