"""The PCP report as a PDF (care/pcp_report.py): one page, two at most, for the PCP office record.

fpdf2 is pure Python and installs from a wheel; only the PDF core fonts (Helvetica) are used, so no font
file is needed, and since they cover Latin-1 only, other characters are replaced. The report's own caps
keep it to a page; should long texts still run on, the second page ends with a line saying the rest is in
the FHIR document, so the PDF never has a third.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from fpdf import FPDF

MAX_PAGES = 2
_MARGIN = 15  # mm
_BODY, _SMALL = 9.5, 8  # pt
_LINE = 4.4  # mm per line of body text
# Common typography outside Latin-1, written the way a typewriter would.
_PLAIN = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
                        "\u2026": "...", "\u2265": ">=", "\u2264": "<=", "\u00a0": " ", "\u2022": "-"})
_RUN_ON = "The rest of this report is in the FHIR document it was stored with."


class SectionText(Protocol):
    title: str
    paragraphs: Sequence[str]
    items: Sequence[str]


def latin1(text: str) -> str:
    """Text the core fonts can show: typography made plain, anything else outside Latin-1 as '?'."""
    return text.translate(_PLAIN).encode("latin-1", "replace").decode("latin-1")


def render(title: str, heading: str, sections: Sequence[SectionText], footer: str) -> bytes:
    """The report as PDF bytes: title, the one-line heading, then each section's prose and items."""
    pdf = FPDF(format="letter", unit="mm")
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    pdf.set_auto_page_break(True, _MARGIN)
    pdf.set_title(latin1(title))
    pdf.set_creator("CareWeave")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.multi_cell(0, 7, latin1(title), align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", _SMALL)
    pdf.set_text_color(80)
    pdf.multi_cell(0, 4, latin1(heading), align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0)
    writer = _Writer(pdf)
    for section in sections:
        if not writer.heading(section.title):
            break
        if not all(writer.text(p) for p in section.paragraphs) or \
                not all(writer.text(item, bullet=True) for item in section.items):
            break
    # The footer sits in the bottom margin of the last page, which the text never enters.
    pdf.set_auto_page_break(False)
    pdf.set_font("Helvetica", "I", _SMALL - 1)
    pdf.set_text_color(110)
    pdf.set_xy(_MARGIN, pdf.h - _MARGIN + 3)
    pdf.cell(0, 4, latin1(footer))
    return bytes(pdf.output())


class _Writer:
    """Writes blocks while they fit in two pages; once one would not, says so and refuses the rest."""

    def __init__(self, pdf: FPDF) -> None:
        self.pdf = pdf
        self.stopped = False

    def _fits(self, height: float) -> bool:
        pdf = self.pdf
        room = pdf.h - _MARGIN - pdf.get_y()
        if pdf.page_no() < MAX_PAGES or height + _LINE <= room:  # keep a line for the run-on notice
            return True
        pdf.set_font("Helvetica", "I", _BODY)
        pdf.multi_cell(0, _LINE, _RUN_ON, align="L", new_x="LMARGIN", new_y="NEXT")
        self.stopped = True
        return False

    def heading(self, title: str) -> bool:
        if self.stopped or not self._fits(7 + _LINE * 2):
            return False
        self.pdf.ln(2.5)
        self.pdf.set_font("Helvetica", "B", 11)
        self.pdf.set_fill_color(232, 238, 245)
        self.pdf.cell(0, 6, latin1(title), fill=True, new_x="LMARGIN", new_y="NEXT")
        self.pdf.ln(1)
        return True

    def text(self, text: str, bullet: bool = False) -> bool:
        pdf = self.pdf
        pdf.set_font("Helvetica", "", _BODY)
        indent = 5 if bullet else 0
        width = pdf.epw - indent
        lines = pdf.multi_cell(width, _LINE, latin1(text), align="L", dry_run=True, output="LINES")
        if self.stopped or not self._fits(len(lines) * _LINE):
            return False
        if bullet:
            pdf.cell(indent, _LINE, "-")
        pdf.multi_cell(width, _LINE, latin1(text), align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(0.6)
        return True
