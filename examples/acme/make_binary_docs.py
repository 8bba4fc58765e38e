"""Write the two binary documents of the Acme example knowledge base.

    python examples/acme/make_binary_docs.py

Produces, next to the Markdown and HTML documents in `docs/`:

- `docs/warranty-terms.pdf`  (fpdf2, core Helvetica font, latin-1 text)
- `docs/care-plus-terms.docx` (python-docx, real Heading 1 / Heading 2 styles)

The content lives in this script so the files can be regenerated; the generated
files are committed too, because they are small and the tests read them directly.
Output is deterministic (fixed creation dates), so re-running does not change
the files unless the content changes.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from docx import Document
from fpdf import FPDF

DOCS = Path(__file__).resolve().parent / "docs"
FIXED_DATE = dt.datetime(2025, 1, 15, 9, 0, 0, tzinfo=dt.UTC)

# A block is ("h1" | "h2" | "h3" | "p" | "ul" | "ol", payload); the PDF uses no "h3".
Block = tuple[str, object]

# --- Acme Limited Warranty (PDF) -----------------------------------------------------

WARRANTY_TITLE = "Acme Limited Warranty"

WARRANTY: list[Block] = [
    ("h1", WARRANTY_TITLE),
    (
        "p",
        'This Limited Warranty is given by Acme Home Robotics, Inc. ("Acme") to the original buyer '
        "and to anyone who later owns the product with the original proof of purchase. It covers "
        "Acme products bought new or Certified Refurbished from Acme or from an authorised Acme "
        "retailer. In the United Kingdom and the European Union, this warranty is in addition to "
        "your statutory rights, which it does not affect.",
    ),
    ("h2", "Warranty periods"),
    (
        "p",
        "The warranty period starts on the date the product is delivered to you. Each product is "
        "covered for the period below.",
    ),
    (
        "ul",
        [
            "Acme Sweepy S1: 1 year",
            "Acme Sweepy S2 Pro: 2 years",
            "Acme Home Hub: 2 years",
            "Acme Auto-Empty Dock: 1 year",
            "Robot batteries (S1 and S2 Pro): 1 year",
            "Spare parts and accessories: 90 days",
            "Certified Refurbished robots: 6 months",
        ],
    ),
    (
        "p",
        "The battery of a Sweepy S2 Pro is therefore covered for 1 year, while the rest of the "
        "robot is covered for 2 years. An active Acme Care+ subscription extends these periods; "
        "see the Acme Care+ Terms.",
    ),
    ("h2", "What is covered"),
    (
        "p",
        "Acme warrants that the product is free from defects in materials and workmanship under "
        "normal household use. A battery is considered defective if it no longer holds a charge, "
        "or if its runtime has dropped below 50% of the original runtime within the battery "
        "warranty period.",
    ),
    ("h2", "What is not covered"),
    (
        "ul",
        [
            "Normal wear of consumable parts: brushes, filters, mop pads and dust bags.",
            "Accidental damage, such as drops, falls down stairs or impact.",
            "Liquid damage, except water from the S2 Pro water tank used as instructed.",
            "Damage caused by non-Acme parts, batteries or chargers.",
            "Repairs or modifications by anyone other than Acme or an Acme repair partner.",
            "Commercial use, such as use in offices, shops, hotels or rental properties.",
            "Cosmetic damage, such as scratches and dents, that does not affect how the product works.",
            "Products whose serial number has been removed or made unreadable.",
            "Loss or theft.",
        ],
    ),
    ("h2", "How to make a warranty claim"),
    (
        "ol",
        [
            "Find your serial number. On a robot, remove the dustbin: the serial number is on the "
            "sticker underneath. On the Home Hub and the Auto-Empty Dock it is on the underside. "
            "Serial numbers start with SW1 (Sweepy S1), SW2P (Sweepy S2 Pro), HB1 (Home Hub) or "
            "AD1 (Auto-Empty Dock).",
            "Have your proof of purchase ready: your Acme order number, or the receipt from the retailer.",
            "Go to support.acmehome.example/warranty, or contact Acme Support, and describe the problem. "
            "A short video of the problem helps us decide faster.",
            "A support agent may ask you to try some troubleshooting steps first.",
        ],
    ),
    (
        "p",
        "We decide on every claim within 3 business days of receiving all the information we need.",
    ),
    ("h2", "What happens after an approved claim"),
    (
        "p",
        "Acme will, at its choice, repair the product, replace the faulty part, or replace the "
        "product with a new or Certified Refurbished product of the same model, or an equivalent "
        "model if that one is no longer made. Acme pays the shipping both ways and sends you a "
        "prepaid label. Repaired products are shipped back within 10 business days of arriving at "
        "our repair centre.",
    ),
    (
        "p",
        "A repaired or replacement product is covered for the rest of the original warranty "
        "period or for 90 days, whichever is longer. Parts and products that we replace become "
        "Acme's property.",
    ),
    ("h2", "Limits of this warranty"),
    (
        "p",
        "To the extent the law allows, this warranty is the only warranty Acme gives for the "
        "product, and Acme is not responsible for indirect or consequential losses. Some states "
        "and countries do not allow these limits, so they may not apply to you.",
    ),
    (
        "p",
        "Acme Home Robotics, Inc., 100 Example Way, Springfield, OR 97477, United States. "
        "Warranty terms version 2025-01.",
    ),
]


def write_pdf(blocks: list[Block], title: str, path: Path) -> None:
    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_author("Acme Home Robotics, Inc.")
    pdf.set_subject("Warranty terms for Acme Home Robotics products")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()

    def para(text: str, size: float = 10.5, style: str = "", after: float = 3) -> None:
        text.encode("latin-1")  # core fonts only take latin-1; fail loudly otherwise
        pdf.set_font("Helvetica", style=style, size=size)
        pdf.multi_cell(0, size * 0.5, text, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(after)

    for kind, payload in blocks:
        if kind == "h1":
            para(str(payload), size=20, style="B", after=5)
        elif kind == "h2":
            pdf.ln(2)
            para(str(payload), size=14, style="B", after=2)
        elif kind == "p":
            para(str(payload))
        elif kind in ("ul", "ol"):
            for i, item in enumerate(payload, start=1):  # type: ignore[arg-type]
                marker = f"{i}." if kind == "ol" else "-"
                para(f"{marker} {item}", after=1.5)
            pdf.ln(1.5)
        else:
            raise ValueError(kind)
    pdf.output(str(path))


# --- Acme Care+ Terms (DOCX) ---------------------------------------------------------

CARE_TITLE = "Acme Care+ Terms"

CARE_PLUS: list[Block] = [
    ("h1", CARE_TITLE),
    (
        "p",
        "Acme Care+ is an optional subscription from Acme Home Robotics that extends the Acme "
        "Limited Warranty, protects your devices against accidents and gives you priority "
        "support. These terms describe what Care+ includes and how to make a claim. Prices are "
        "listed on the Pricing and Plans page; cancelling is described in Cancelling Your Acme "
        "Care+ Subscription.",
    ),
    ("h2", "Who can join"),
    (
        "ul",
        [
            "You can add Care+ for an Acme device within 60 days of buying it. After 60 days, the "
            "device can no longer be enrolled.",
            "The device must be bought new or Certified Refurbished, from Acme or an authorised "
            "Acme retailer, and must be working when you enrol.",
            "You must live in a country where Acme sells its products: the United States, Canada, "
            "the United Kingdom, or one of the EU countries we ship to.",
            "Enrol in the Acme Home app under Account > Subscription > Add Care+.",
        ],
    ),
    ("h2", "What Care+ includes"),
    ("h3", "Extended warranty"),
    (
        "p",
        "While your Care+ subscription is active, the Acme Limited Warranty for each covered "
        "device, including its battery, continues beyond the normal warranty period, for up to "
        "5 years from the date the device was delivered.",
    ),
    ("h3", "Accidental damage protection"),
    (
        "p",
        "Care+ covers accidental damage that stops a device from working properly, such as a "
        "robot falling down the stairs, a dropped Home Hub, a drink spilled on a robot, or a "
        "bumper chewed by a pet. You can make up to 2 accidental damage claims per covered device "
        "in any 12 months. Each accidental damage claim has a service fee of $49. Warranty "
        "claims for defects have no service fee.",
    ),
    ("h3", "Free battery replacement"),
    (
        "p",
        "Once every 24 months of continuous membership, you can get a free replacement battery "
        "for a covered robot, whatever the condition of the old battery. Request it in the app "
        "under Account > Subscription > Claim battery.",
    ),
    ("h3", "Express replacement"),
    (
        "p",
        "If a covered device needs to be replaced, we ship the replacement by express delivery "
        "before you send the faulty device back, so you are not left without it.",
    ),
    ("h3", "Discount on parts"),
    (
        "p",
        "Care+ members get 15% off spare parts and accessories bought from Acme. The discount is "
        "applied automatically at checkout when you are signed in. It cannot be combined with "
        "promotional codes.",
    ),
    ("h3", "Priority support"),
    (
        "p",
        "Care+ members can use the Care+ priority phone line and are placed first in the live "
        "chat queue. Priority support hours are on the Contact Acme Support page.",
    ),
    ("h2", "What Care+ does not cover"),
    (
        "ul",
        [
            "Loss or theft of a device.",
            "Damage caused on purpose, or by misuse such as using the robot outdoors.",
            "Cosmetic damage, such as scratches, that does not affect how the device works.",
            "Normal wear of consumable parts: brushes, filters, mop pads and dust bags.",
            "Damage from fire, flood or other natural disasters.",
            "Devices used commercially, or whose serial number has been removed.",
            "Devices repaired or opened by anyone other than Acme, apart from fitting genuine Acme spare parts.",
        ],
    ),
    ("h2", "How to make a Care+ claim"),
    (
        "ol",
        [
            "In the Acme Home app, go to Account > Subscription > Start a claim, or call the Care+ priority line.",
            "Choose the device and describe what happened. Add photos of any damage.",
            "For an accidental damage claim, pay the $49 service fee.",
            "We ship a replacement device by express delivery within 2 business days of approving "
            "the claim, together with a prepaid label.",
            "Send the damaged device back within 14 days using the prepaid label. If it does not "
            "arrive, we charge the full price of the replacement device.",
        ],
    ),
    ("h2", "Other terms"),
    (
        "p",
        "Care+ covers the devices listed under Account > Subscription > Covered devices. The "
        "subscription renews automatically until you cancel it. Acme may change these terms "
        "with at least 30 days' notice by email; changes never reduce the coverage of a claim "
        "already made. Care+ Terms version 2025-01.",
    ),
]


def write_docx(blocks: list[Block], title: str, path: Path) -> None:
    doc = Document()
    props = doc.core_properties
    props.title = title
    props.author = "Acme Home Robotics, Inc."
    props.subject = "Acme Care+ subscription terms"
    props.created = FIXED_DATE.replace(tzinfo=None)
    props.modified = FIXED_DATE.replace(tzinfo=None)
    props.last_modified_by = "Acme Home Robotics, Inc."
    props.revision = 1

    for kind, payload in blocks:
        if kind == "h1":
            doc.add_heading(str(payload), level=1)
        elif kind == "h2":
            doc.add_heading(str(payload), level=2)
        elif kind == "h3":
            doc.add_heading(str(payload), level=3)
        elif kind == "p":
            doc.add_paragraph(str(payload))
        elif kind in ("ul", "ol"):
            style = "List Bullet" if kind == "ul" else "List Number"
            for item in payload:  # type: ignore[union-attr]
                doc.add_paragraph(str(item), style=style)
        else:
            raise ValueError(kind)
    doc.save(str(path))


def main() -> int:
    DOCS.mkdir(parents=True, exist_ok=True)
    pdf_path = DOCS / "warranty-terms.pdf"
    docx_path = DOCS / "care-plus-terms.docx"
    write_pdf(WARRANTY, WARRANTY_TITLE, pdf_path)
    write_docx(CARE_PLUS, CARE_TITLE, docx_path)
    for p in (pdf_path, docx_path):
        print(f"wrote {p.relative_to(DOCS.parent)} ({p.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
