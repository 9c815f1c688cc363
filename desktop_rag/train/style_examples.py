"""Training examples for the "executive brief" answer style, generated from our own templates.

Every example is a chat exactly like the prompts the app sends at answer time: the system message is
:func:`~desktop_rag.core.generate.prompting.system_prompt`, the user message is built by
:func:`~desktop_rag.core.generate.prompting.pack_prompt` from numbered source blocks
(:func:`~desktop_rag.core.generate.prompting.format_source`), and the assistant message is the answer in the
trained style::

    Bottom line: The Harwick plant produced 48,200 gearboxes in 2021 [2].
    Key points:
    - The Harwick plant employs 340 people across 3 shifts [2]
    - Unplanned downtime at the Harwick plant totalled 61 hours in 2021 [1]

The passages are written here from templates with fictional, randomly drawn entities, figures and
dates (plants, clinics, budgets, trials, shipments, policies, schools, construction projects), so no
outside text is used. Each example has 2-5 sources (the app gives 5 by default): one or two describe the entity asked about and
the rest are distractors (often the same kind of entity with different figures). Every fact in an
answer is a sentence copied from a source (without its final period) and cites that source. About
one example in ten asks about something the sources do not hold and is answered exactly
:data:`~desktop_rag.core.generate.prompting.NOT_FOUND`.

Generation is deterministic: the same ``seed`` gives the same examples.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop_rag.core.generate.prompting import NOT_FOUND, pack_prompt
from desktop_rag.core.types import Hit

MARKER = "Bottom line:"
KEY_POINTS = "Key points:"
STYLE_NAME = "executive-brief"
STYLE_DESCRIPTION = (
    "Executive brief: a one-sentence 'Bottom line:' with the key fact and its citation, then "
    "'Key points:' with 1-3 cited bullets copied from the sources."
)
ABSTAIN_SHARE = 0.1

# --- fictional vocabulary ---------------------------------------------------------------------

_PLACE_HEAD = (
    "Har", "Dun", "Bel", "Cor", "Mar", "Ash", "Tal", "Wen", "Ros", "Kel", "Bram", "Fen", "Lin",
    "Ox", "Pel", "Stan", "Thorn", "Ver", "Yar", "Hol", "Brin", "Cal", "Elm", "Gar", "Mor", "Nor",
    "Quen", "Sel", "Tor", "Ul", "Wil", "Zan",
)  # fmt: skip
_PLACE_TAIL = (
    "wick", "more", "ford", "ton", "field", "haven", "by", "dale", "mouth", "stead", "combe",
    "ley", "bridge", "holm", "worth", "gate", "brook", "crest", "mere", "wood",
)  # fmt: skip
_FIRST = (
    "Amara", "Ben", "Clara", "Dev", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Keiko",
    "Liam", "Maya", "Nikolai", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera",
    "Wei", "Xavier", "Yusuf", "Zoe", "Marta", "Pavel", "Noor", "Tomas",
)  # fmt: skip
_SURNAME_HEAD = ("Ald", "Brack", "Carr", "Dal", "Ester", "Fitz", "Grim", "Hal", "Ives", "Jar",
                 "Kest", "Lowr", "Mell", "Nash", "Orm", "Pask", "Rad", "Sorr", "Tell", "Vand")  # fmt: skip
_SURNAME_TAIL = ("ey", "ridge", "ington", "well", "son", "ford", "ane", "ers", "ham", "ott")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_PRODUCTS = ("gearboxes", "pumps", "valves", "solar panels", "bicycle frames", "water filters",
             "circuit boards", "ceramic tiles", "glass bottles", "steel beams")  # fmt: skip
_CARGO = ("coffee beans", "timber", "wind turbine blades", "frozen fish", "cotton bales",
          "copper wire", "rice", "machine parts", "olive oil", "paper pulp")  # fmt: skip
_DEPTS = ("Parks", "Libraries", "Transport", "Housing", "Public Health", "Waste Services",
          "Planning", "Culture", "Water", "Emergency Services")  # fmt: skip
_BUDGET_ITEMS = ("road resurfacing", "staff training", "vehicle leases", "building repairs",
                 "software licences", "street lighting", "grants to charities")  # fmt: skip
_DRUG_HEAD = ("Vel", "Cor", "Tam", "Lun", "Zer", "Pra", "Oxa", "Bri", "Dex", "Mira")
_DRUG_TAIL = ("orexin", "amab", "ilant", "oprazole", "ecitib", "avir", "olimus", "afenib")
_CONDITIONS = ("migraine", "asthma", "type 2 diabetes", "psoriasis", "chronic cough",
               "high blood pressure", "osteoarthritis", "insomnia")  # fmt: skip
_COMPANY_TAIL = ("Industries", "Foods", "Logistics", "Components", "Textiles", "Energy",
                 "Software", "Instruments")  # fmt: skip
_POLICIES = ("leave", "remote work", "travel", "training", "overtime", "parental leave")
_SUBJECTS = ("mathematics", "chemistry", "music", "history", "computing", "biology")
_FILLER = (
    "Figures in this section are unaudited.",
    "The next review is planned for the autumn.",
    "Full tables are given in the appendix.",
    "This summary was prepared for the board.",
    "Comments should be sent to the records office.",
    "All amounts are rounded to the nearest unit.",
    "The previous edition of this document is withdrawn.",
    "Questions about these figures go to the operations team.",
    "Definitions of the terms used are at the end of the report.",
    "Some figures were revised after the first draft.",
    "Page numbers refer to the printed edition.",
    "The glossary explains the abbreviations used.",
    "Copies of this document are kept in the records office.",
    "The layout of the tables follows last year's report.",
    "Totals may not add up because of rounding.",
    "Contact details are listed on the back cover.",
    "A summary in plain language is available on request.",
    "This edition replaces the draft circulated in the spring.",
)
# Sentences about an entity that state no fact (real passages are mostly such text).
_BACKGROUND = (
    "This document sets out the position of {name} at the end of the period.",
    "The figures for {name} were checked by an independent reviewer.",
    "Readers who need more detail on {name} can ask for the working papers.",
    "The section below summarises what changed for {name} since the last edition.",
    "Staff at {name} provided most of the information in this section.",
    "Notes on {name} follow the same layout as in earlier years.",
    "Any corrections to the record of {name} will appear in the next edition.",
    "{name} is one of several subjects covered by this report.",
)
_EXTS = (".pdf", ".pdf", ".pdf", ".docx", ".md", ".txt", ".html")
_SECTIONS = ("Summary", "Operations", "Results", "Finance", "Staffing", "Overview", "Details")


def _place(rng: random.Random) -> str:
    return rng.choice(_PLACE_HEAD) + rng.choice(_PLACE_TAIL)


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_SURNAME_HEAD)}{rng.choice(_SURNAME_TAIL)}"


def _date(rng: random.Random, year: int) -> str:
    return f"{rng.randint(1, 28)} {rng.choice(_MONTHS)} {year}"


def _money(rng: random.Random, cur: str = "$") -> str:
    if rng.random() < 0.5:
        return f"{cur}{rng.randint(11, 98) / 10:.1f} million"
    return f"{cur}{rng.randint(120, 990) * 1000:,}"


def _pct(rng: random.Random, lo: int = 2, hi: int = 95) -> str:
    return f"{rng.randint(lo * 10, hi * 10) / 10:g} percent"


# --- entities ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """One sentence about an entity as written in a source, and the questions it answers."""

    key: str
    sentence: str
    questions: tuple[str, ...]


@dataclass(frozen=True)
class Entity:
    """A fictional subject of a document: its facts and how its documents are titled."""

    kind: str
    name: str
    title: str
    facts: tuple[Fact, ...]


def _plant(rng: random.Random) -> Entity:
    p = _place(rng)
    year = rng.randint(2016, 2025)
    product = rng.choice(_PRODUCTS)
    n = f"{rng.randint(120, 990) * 100:,}"
    facts = (
        Fact(
            "output",
            f"The {p} plant produced {n} {product} in {year}.",
            (
                f"How many {product} did the {p} plant produce in {year}?",
                f"What was the output of the {p} plant in {year}?",
            ),
        ),
        Fact(
            "staff",
            f"The {p} plant employs {rng.randint(40, 900)} people across {rng.randint(2, 4)} shifts.",
            (f"How many people work at the {p} plant?", f"What is the workforce of the {p} plant?"),
        ),
        Fact(
            "downtime",
            f"Unplanned downtime at the {p} plant totalled {rng.randint(5, 400)} hours in {year}.",
            (f"How much unplanned downtime did the {p} plant have in {year}?",),
        ),
        Fact(
            "energy",
            f"The {p} plant used {rng.randint(800, 60000):,} megawatt-hours of electricity in {year}.",
            (f"How much electricity did the {p} plant use in {year}?",),
        ),
        Fact(
            "manager",
            f"{_person(rng)} has managed the {p} plant since {rng.randint(2005, year)}.",
            (f"Who manages the {p} plant?", f"Who is the manager of the {p} plant?"),
        ),
        Fact(
            "opened",
            f"The {p} plant opened in {rng.randint(1950, 2015)} on a {rng.randint(3, 60)}-hectare site.",
            (f"When did the {p} plant open?", f"How large is the site of the {p} plant?"),
        ),
        Fact(
            "defects",
            f"The defect rate at the {p} plant fell to {rng.randint(2, 49) / 10:g} percent in {year}.",
            (f"What was the defect rate at the {p} plant in {year}?",),
        ),
    )
    return Entity("plant", f"the {p} plant", f"{p} plant annual report {year}", facts)


def _clinic(rng: random.Random) -> Entity:
    c = f"{_place(rng)} Clinic"
    year = rng.randint(2016, 2025)
    month = rng.choice(_MONTHS)
    facts = (
        Fact(
            "patients",
            f"{c} treated {rng.randint(300, 9000):,} patients in {month} {year}.",
            (
                f"How many patients did {c} treat in {month} {year}?",
                f"How many patients were seen at {c} in {month} {year}?",
            ),
        ),
        Fact(
            "wait",
            f"The average wait at {c} was {rng.randint(6, 95)} minutes in {year}.",
            (
                f"How long was the average wait at {c}?",
                f"What was the average waiting time at {c}?",
            ),
        ),
        Fact(
            "staff",
            f"{c} has {rng.randint(2, 40)} doctors and {rng.randint(4, 90)} nurses.",
            (f"How many doctors work at {c}?", f"How many nurses does {c} have?"),
        ),
        Fact(
            "hours",
            f"{c} is open from {rng.randint(6, 9)} a.m. to {rng.randint(4, 9)} p.m. on weekdays.",
            (f"What are the opening hours of {c}?", f"When is {c} open?"),
        ),
        Fact(
            "director",
            f"Dr {_person(rng)} is the medical director of {c}.",
            (f"Who is the medical director of {c}?", f"Who runs {c}?"),
        ),
        Fact(
            "vaccines",
            f"{c} gave {rng.randint(200, 12000):,} flu vaccinations during the {year} season.",
            (f"How many flu vaccinations did {c} give in {year}?",),
        ),
        Fact(
            "satisfaction",
            f"Patient satisfaction at {c} reached {_pct(rng, 55, 99)} in the {year} survey.",
            (f"How satisfied were patients with {c}?", f"What was patient satisfaction at {c}?"),
        ),
    )
    return Entity("clinic", c, f"{c} service review {year}", facts)


def _budget(rng: random.Random) -> Entity:
    council = _place(rng)
    dept = rng.choice(_DEPTS)
    d = f"{council} {dept} department"
    year = rng.randint(2017, 2026)
    cur = rng.choice(("$", "€", "£"))
    facts = (
        Fact(
            "total",
            f"The {d} has a budget of {_money(rng, cur)} for fiscal year {year}.",
            (
                f"What is the budget of the {d} for fiscal year {year}?",
                f"How much money does the {d} have in {year}?",
            ),
        ),
        Fact(
            "salaries",
            f"Salaries account for {_pct(rng, 20, 80)} of the {d} budget in {year}.",
            (f"What share of the {d} budget goes to salaries?",),
        ),
        Fact(
            "capital",
            f"The {d} set aside {_money(rng, cur)} for capital projects in {year}.",
            (f"How much did the {d} set aside for capital projects?",),
        ),
        Fact(
            "change",
            f"The {d} budget for {year} is {_pct(rng, 1, 30)} {rng.choice(('higher', 'lower'))}"
            f" than in {year - 1}.",
            (f"How did the {d} budget change from {year - 1} to {year}?",),
        ),
        Fact(
            "approved",
            f"The council approved the {d} budget on {_date(rng, year - 1)}.",
            (f"When was the {d} budget approved?",),
        ),
        Fact(
            "lead",
            f"{_person(rng)} prepared the {d} budget as finance lead.",
            (f"Who prepared the {d} budget?",),
        ),
        Fact(
            "largest",
            f"The largest item in the {d} budget is {rng.choice(_BUDGET_ITEMS)} at {_money(rng, cur)}.",
            (f"What is the largest item in the {d} budget?",),
        ),
    )
    return Entity("budget", f"the {d}", f"{council} council budget {year}: {dept}", facts)


def _trial(rng: random.Random) -> Entity:
    drug = rng.choice(_DRUG_HEAD) + rng.choice(_DRUG_TAIL)
    cond = rng.choice(_CONDITIONS)
    t = f"{drug} trial"
    year = rng.randint(2015, 2025)
    facts = (
        Fact(
            "enrolled",
            f"The {t} enrolled {rng.randint(40, 3000):,} participants with {cond} at "
            f"{rng.randint(2, 60)} sites.",
            (f"How many participants did the {t} enrol?", f"How many sites took part in the {t}?"),
        ),
        Fact(
            "endpoint",
            f"In the {t}, {_pct(rng, 20, 80)} of patients on {drug} reached the primary endpoint, "
            f"against {_pct(rng, 5, 40)} on placebo.",
            (f"How many patients reached the primary endpoint in the {t}?", f"Did {drug} work?"),
        ),
        Fact(
            "duration",
            f"The {t} ran for {rng.randint(4, 104)} weeks.",
            (f"How long did the {t} last?", f"How many weeks did the {t} run?"),
        ),
        Fact(
            "start",
            f"Enrolment in the {t} began on {_date(rng, year)}.",
            (f"When did enrolment in the {t} begin?", f"When did the {t} start?"),
        ),
        Fact(
            "adverse",
            f"Serious adverse events occurred in {_pct(rng, 1, 15)} of participants in the {t}.",
            (f"How common were serious adverse events in the {t}?", f"Was {drug} safe?"),
        ),
        Fact(
            "lead",
            f"The {t} was led by Dr {_person(rng)} of {_place(rng)} University Hospital.",
            (f"Who led the {t}?",),
        ),
        Fact(
            "dose",
            f"Participants in the {t} took {rng.choice((5, 10, 20, 25, 50, 100, 200))} mg of {drug}"
            f" {rng.choice(('once', 'twice'))} daily.",
            (f"What dose of {drug} was used in the {t}?",),
        ),
    )
    return Entity("trial", f"the {t}", f"{drug} in {cond}: trial report", facts)


def _shipment(rng: random.Random) -> Entity:
    sid = f"{rng.choice('ABCDEFGHKLMNPRSTVXZ')}{rng.choice('ABCDEFGHKLMNPRSTVXZ')}-{rng.randint(1000, 9999)}"
    s = f"shipment {sid}"
    year = rng.randint(2018, 2025)
    m1 = rng.randint(0, 10)
    cur = rng.choice(("$", "€", "£"))
    facts = (
        Fact(
            "departed",
            f"Shipment {sid} left {_place(rng)} on {rng.randint(1, 28)} {_MONTHS[m1]} {year}.",
            (f"When did {s} leave port?", f"Where did {s} depart from?"),
        ),
        Fact(
            "arrived",
            f"Shipment {sid} reached {_place(rng)} on {rng.randint(1, 28)} {_MONTHS[m1 + 1]} {year}.",
            (f"When did {s} arrive?", f"Where was {s} delivered?"),
        ),
        Fact(
            "containers",
            f"Shipment {sid} carried {rng.randint(2, 400)} containers of {rng.choice(_CARGO)}.",
            (f"What did {s} carry?", f"How many containers were in {s}?"),
        ),
        Fact(
            "weight",
            f"The total weight of shipment {sid} was {rng.randint(20, 9000):,} tonnes.",
            (f"How heavy was {s}?", f"What was the total weight of {s}?"),
        ),
        Fact(
            "vessel",
            f"Shipment {sid} travelled on the vessel {_place(rng)} {rng.choice(('Star', 'Trader', 'Spirit', 'Queen', 'Runner'))}.",
            (f"Which vessel carried {s}?",),
        ),
        Fact(
            "cost",
            f"Freight charges for shipment {sid} came to {_money(rng, cur)}.",
            (f"How much did freight for {s} cost?", f"What were the freight charges for {s}?"),
        ),
        Fact(
            "damage",
            f"{rng.randint(1, 9)} containers of shipment {sid} were damaged in transit.",
            (f"Was any of {s} damaged?", f"How many containers of {s} were damaged?"),
        ),
    )
    return Entity("shipment", s, f"Shipping log {year}: {sid}", facts)


def _policy(rng: random.Random) -> Entity:
    co = f"{_place(rng)} {rng.choice(_COMPANY_TAIL)}"
    pol = rng.choice(_POLICIES)
    year = rng.randint(2018, 2026)
    cur = rng.choice(("$", "€", "£"))
    facts = (
        Fact(
            "leave",
            f"Under the {co} leave policy, staff receive {rng.randint(18, 35)} days of paid annual leave.",
            (
                f"How many days of paid leave do {co} staff get?",
                f"What is the annual leave at {co}?",
            ),
        ),
        Fact(
            "remote",
            f"The {co} remote work policy allows up to {rng.randint(1, 4)} days of home working per week.",
            (f"How many days can {co} staff work from home?",),
        ),
        Fact(
            "hotel",
            f"Under the {co} travel policy, hotel costs are refunded up to {_money(rng, cur)} per year.",
            (f"How much hotel cost does {co} refund?",),
        ),
        Fact(
            "effective",
            f"The {co} {pol} policy takes effect on {_date(rng, year)}.",
            (
                f"When does the {co} {pol} policy take effect?",
                f"When does the new {pol} policy at {co} start?",
            ),
        ),
        Fact(
            "notice",
            f"The {co} employee handbook sets a notice period of {rng.randint(1, 12)} weeks.",
            (f"What is the notice period at {co}?",),
        ),
        Fact(
            "owner",
            f"{_person(rng)} is responsible for the {co} {pol} policy.",
            (
                f"Who is responsible for the {co} {pol} policy?",
                f"Who owns the {pol} policy at {co}?",
            ),
        ),
        Fact(
            "training",
            f"{co} employees must complete {rng.randint(2, 40)} hours of safety training each year.",
            (f"How much safety training must {co} employees complete?",),
        ),
    )
    return Entity("policy", co, f"{co} employee handbook {year}", facts)


def _school(rng: random.Random) -> Entity:
    sch = f"{_place(rng)} {rng.choice(('Academy', 'High School', 'Primary School', 'College'))}"
    year = rng.randint(2016, 2025)
    subj = rng.choice(_SUBJECTS)
    facts = (
        Fact(
            "pupils",
            f"{sch} had {rng.randint(120, 2400):,} pupils on roll in {year}.",
            (f"How many pupils attend {sch}?", f"How many students were at {sch} in {year}?"),
        ),
        Fact(
            "teachers",
            f"{sch} employs {rng.randint(8, 160)} teachers.",
            (f"How many teachers work at {sch}?",),
        ),
        Fact(
            "head",
            f"{_person(rng)} became head teacher of {sch} in {rng.randint(2005, year)}.",
            (f"Who is the head teacher of {sch}?", f"Who leads {sch}?"),
        ),
        Fact(
            "results",
            f"In {year}, {_pct(rng, 40, 99)} of {sch} pupils passed the final {subj} exam.",
            (
                f"How did {sch} pupils do in the {subj} exam?",
                f"What was the {subj} pass rate at {sch}?",
            ),
        ),
        Fact(
            "attendance",
            f"Attendance at {sch} averaged {_pct(rng, 85, 99)} in {year}.",
            (f"What was attendance at {sch} in {year}?",),
        ),
        Fact(
            "founded",
            f"{sch} was founded in {rng.randint(1850, 2010)}.",
            (f"When was {sch} founded?", f"How old is {sch}?"),
        ),
        Fact(
            "class",
            f"The average class size at {sch} is {rng.randint(14, 34)} pupils.",
            (f"How big are classes at {sch}?", f"What is the average class size at {sch}?"),
        ),
    )
    return Entity("school", sch, f"{sch} inspection report {year}", facts)


def _project(rng: random.Random) -> Entity:
    what = rng.choice(("bridge", "tunnel", "library", "sports hall", "water works", "tram line"))
    pr = f"{_place(rng)} {what}"
    year = rng.randint(2015, 2027)
    cur = rng.choice(("$", "€", "£"))
    facts = (
        Fact(
            "cost",
            f"The {pr} project is expected to cost {_money(rng, cur)}.",
            (f"How much will the {pr} cost?", f"What is the expected cost of the {pr} project?"),
        ),
        Fact(
            "complete",
            f"Construction of the {pr} is due to finish in {rng.choice(_MONTHS)} {year}.",
            (f"When will the {pr} be finished?", f"When is the {pr} due to be completed?"),
        ),
        Fact(
            "contractor",
            f"{_place(rng)} Construction won the contract to build the {pr}.",
            (f"Who is building the {pr}?", f"Which contractor won the {pr} contract?"),
        ),
        Fact(
            "size",
            f"The {pr} will be {rng.randint(40, 4800):,} metres long.",
            (f"How long will the {pr} be?",),
        ),
        Fact(
            "workers",
            f"Up to {rng.randint(30, 900)} workers will be on the {pr} site at the peak.",
            (f"How many workers will be on the {pr} site?",),
        ),
        Fact(
            "delay",
            f"The {pr} project is running {rng.randint(2, 18)} months behind schedule.",
            (f"Is the {pr} project delayed?", f"How far behind schedule is the {pr}?"),
        ),
        Fact(
            "engineer",
            f"{_person(rng)} is the chief engineer on the {pr} project.",
            (f"Who is the chief engineer on the {pr} project?",),
        ),
    )
    return Entity("project", f"the {pr}", f"{pr} project update {year - 2}", facts)


_KINDS: tuple[Callable[[random.Random], Entity], ...] = (
    _plant,
    _clinic,
    _budget,
    _trial,
    _shipment,
    _policy,
    _school,
    _project,
)


# --- examples ---------------------------------------------------------------------------------


@dataclass
class _Source:
    """A passage under construction: the entity it describes and the facts it states."""

    entity: Entity
    facts: list[Fact]
    text: str = ""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _write_passage(rng: random.Random, src: _Source) -> None:
    sentences = [f.sentence for f in src.facts]
    rng.shuffle(sentences)
    name = src.entity.name
    extra = [rng.choice(_FILLER) for _ in range(rng.choice((0, 0, 1, 1, 2, 3)))]
    extra += [
        t.format(name=name[0].upper() + name[1:] if t.startswith("{") else name)
        for t in rng.sample(_BACKGROUND, rng.choice((0, 1, 1, 2)))
    ]
    for sentence in extra:
        if sentence not in sentences:
            sentences.insert(rng.randint(0, len(sentences)), sentence)
    # One to three paragraphs, as chunks of real documents have.
    cuts = sorted(
        rng.sample(range(1, len(sentences)), min(len(sentences) - 1, rng.choice((0, 1, 2))))
    )
    bounds = [0, *cuts, len(sentences)]
    text = "\n".join(" ".join(sentences[a:b]) for a, b in itertools.pairwise(bounds))
    if rng.random() < 0.2:
        text = f"{src.entity.title}\n\n{text}"  # a heading line
    src.text = text


def _hit(rng: random.Random, src: _Source, file_id: int) -> Hit:
    ext = rng.choice(_EXTS)
    stem = _slug(src.entity.title)
    page = rng.randint(1, 40) if ext == ".pdf" else None
    context = src.entity.title
    if rng.random() < 0.4:
        context = f"{src.entity.title} › {rng.choice(_SECTIONS)}"
    folder = rng.choice(("reports", "docs", "archive", "shared/files", "inbox"))
    return Hit(
        chunk_id=file_id * 100 + (page or 0),
        file_id=file_id,
        path=f"/home/user/{folder}/{stem}{ext}",
        page=page,
        start=0,
        end=len(src.text),
        text=src.text,
        context=context,
        score=round(rng.uniform(0.3, 0.95), 3),
    )


def cite(sentence: str, n: int) -> str:
    """``sentence`` without its final period, then `` [n]``."""
    return f"{sentence.rstrip().rstrip('.')} [{n}]"


def make_example(rng: random.Random, *, abstain: bool = False) -> dict[str, Any]:
    """One training example: ``{"messages": [system, user, assistant], "meta": {...}}``.

    ``meta`` holds ``abstain`` (bool), ``question_fact`` (the sentence that answers the question,
    without its period; in no source when ``abstain``), ``answer_sources`` (1-based numbers of the
    sources that describe the entity asked about) and ``cited`` (a list of ``{"n", "fact"}``: each
    cited fact and the source it was copied from).
    """
    make = rng.choice(_KINDS)
    target = make(rng)
    n_sources = rng.choice((2, 3, 3, 4, 4, 5, 5))
    sources: list[_Source] = []
    question_fact = rng.choice(target.facts)
    question = rng.choice(question_fact.questions)

    if abstain:
        # Mostly the entity asked about is absent (only look-alikes of the same kind and others
        # are given); otherwise it is there, but not the fact asked about.
        if rng.random() >= 0.7:
            others = [f for f in target.facts if f.key != question_fact.key]
            sources.append(_Source(target, rng.sample(others, rng.randint(2, 4))))
    else:
        n_relevant = 2 if (n_sources >= 3 and rng.random() < 0.35) else 1
        facts = list(target.facts)
        rng.shuffle(facts)
        facts.remove(question_fact)
        if n_relevant == 1:
            sources.append(_Source(target, [question_fact, *facts[: rng.randint(1, 4)]]))
        else:
            k = rng.randint(1, 3)
            sources.append(_Source(target, [question_fact, *facts[:k]]))
            sources.append(_Source(target, facts[k : k + rng.randint(1, 3)]))
    while len(sources) < n_sources:
        other = make(rng) if rng.random() < 0.6 else rng.choice(_KINDS)(rng)
        if other.name == target.name:
            continue
        sources.append(_Source(other, rng.sample(list(other.facts), rng.randint(2, 5))))
    rng.shuffle(sources)
    for src in sources:
        _write_passage(rng, src)
    hits = [_hit(rng, src, i + 1) for i, src in enumerate(sources)]
    packed = pack_prompt(question, hits, budget_tokens=10**9, count_tokens=lambda _s: 0)

    cited: list[dict[str, Any]] = []
    if abstain:
        answer = NOT_FOUND
    else:
        numbered = [
            (i + 1, f) for i, s in enumerate(sources) if s.entity is target for f in s.facts
        ]
        main = next(n for n, f in numbered if f is question_fact)
        rest = [(n, f) for n, f in numbered if f is not question_fact]
        # Facts from the answer's own source first, then from the other relevant source.
        rest.sort(key=lambda nf: (nf[0] != main, rng.random()))
        points = rest[: rng.choice((1, 2, 2, 3, 3))]
        if len({n for n, _ in points} | {main}) < len({n for n, _ in numbered}) and len(points) > 1:
            # Two relevant sources: make sure the second one is cited too.
            other_n = next(n for n, _ in numbered if n != main)
            points[-1] = next(nf for nf in rest if nf[0] == other_n)
        lines = [f"{MARKER} {cite(question_fact.sentence, main)}.", KEY_POINTS]
        lines += [f"- {cite(f.sentence, n)}" for n, f in points]
        answer = "\n".join(lines)
        cited = [{"n": main, "fact": question_fact.sentence.rstrip(".")}]
        cited += [{"n": n, "fact": f.sentence.rstrip(".")} for n, f in points]
    messages = [*packed.messages, {"role": "assistant", "content": answer}]
    relevant = [i + 1 for i, s in enumerate(sources) if s.entity is target]
    return {
        "messages": messages,
        "meta": {
            "abstain": abstain,
            "question_fact": question_fact.sentence.rstrip("."),
            "answer_sources": relevant,
            "cited": cited,
        },
    }


def generate_examples(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` examples, the same for the same ``seed``; about 10 % abstain (spread evenly)."""
    rng = random.Random(seed)
    n_abstain = round(count * ABSTAIN_SHARE)
    flags = [True] * n_abstain + [False] * (count - n_abstain)
    rng.shuffle(flags)
    return [make_example(rng, abstain=flag) for flag in flags]


def write_jsonl(examples: Iterable[dict[str, Any]], path: Path) -> int:
    """Write one JSON object per line (UTF-8); returns the number written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(ex, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSON-lines file, skipping blank lines.

    Raises:
        ValueError: a line is not valid JSON (the message names the line number).
    """
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path.name}, line {i}: not valid JSON ({exc.msg})") from None
