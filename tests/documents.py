"""Small office documents made on the fly for ingestion tests (fpdf2, python-docx, python-pptx, openpyxl)."""

from __future__ import annotations

import io


def pdf_bytes(*paragraphs: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    for paragraph in paragraphs:
        pdf.multi_cell(0, 8, paragraph)
        pdf.ln(6)
    return bytes(pdf.output())


def docx_bytes(heading: str, paragraph: str) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(heading, level=1)
    document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def pdf_pages(*pages: str) -> bytes:
    """A PDF with one page per argument."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def pptx_bytes(*slides: tuple[str, str]) -> bytes:
    """A deck with one slide per (title, body); an empty title makes a slide without one."""
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    for title, body in slides:
        if title:
            slide = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
            slide.shapes.title.text = title
            slide.placeholders[1].text = body
        else:
            slide = deck.slides.add_slide(deck.slide_layouts[6])  # blank
            slide.shapes.add_textbox(Inches(1), Inches(1), Inches(8), Inches(1)).text_frame.text = body
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def xlsx_bytes(sheets: dict[str, list[list[object]]]) -> bytes:
    """A workbook with one sheet per name, rows as given (the first is the header)."""
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
