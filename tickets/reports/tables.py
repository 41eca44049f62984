"""The reports' tables, as the page shows them and the CSV files hold them: per agent, per team, per day and per
week (the last two with the bot's figures beside the humans'). Each CSV is UTF-8 with a BOM and safe to open in
a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tickets.reports.columns import BOT_COLUMNS, HUMAN_COLUMNS, Column, bot_label
from tickets.reports.figures import Report

TABLES = {"agents": gettext_lazy("Agents"), "teams": gettext_lazy("Teams"), "days": gettext_lazy("Per day"),
          "weeks": gettext_lazy("Per week")}
# Spreadsheet formula injection: a cell starting with one of these runs as a formula when the file is opened
# in Excel or WPS (an agent's display name "=HYPERLINK(...)"). Such a text gets a leading quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Table:
    name: str
    headers: list[str]
    rows: list[list]  # raw values (the CSV's)
    texts: list[list[str]]  # the same, as the page shows them
    total: bool  # the last row is the whole period's


def _row(first: str, figures: Sequence[tuple[list[Column], object]]) -> tuple[list, list[str]]:
    raw, text = [first], [first]
    for columns, of in figures:
        raw += [column.raw(of) for column in columns]
        text += [column.text(of) for column in columns]
    return raw, text


def build(report: Report, name: str) -> Table:
    """The table `name` (one of TABLES) of the report."""
    human, bot = report.human, report.bot
    if name in ("agents", "teams"):
        named = human.agents if name == "agents" else human.teams
        first = _("Agent") if name == "agents" else _("Team")
        lines = [_row(n.name or _("No team"), [(HUMAN_COLUMNS, n.figures)]) for n in named]
        if name == "teams":  # the teams' rows add up to all tickets; the agents' leave out those nobody took
            lines.append(_row(_("All"), [(HUMAN_COLUMNS, human.total)]))
        headers = [first, *(str(c.label) for c in HUMAN_COLUMNS)]
    elif name in ("days", "weeks"):
        by, bot_by = (human.daily, bot.daily) if name == "days" else (human.weekly, bot.weekly)
        lines = [_row(start.isoformat(), [(HUMAN_COLUMNS, by[start]), (BOT_COLUMNS, bot_by[start])]) for start in by]
        lines.append(_row(_("All"), [(HUMAN_COLUMNS, human.total), (BOT_COLUMNS, bot.total)]))
        headers = [_("Day") if name == "days" else _("Week starting"), *(str(c.label) for c in HUMAN_COLUMNS),
                   *(bot_label(c) for c in BOT_COLUMNS)]
    else:
        raise KeyError(name)
    return Table(name=name, headers=headers, rows=[raw for raw, _text in lines],
                 texts=[text for _raw, text in lines], total=name != "agents")


def spreadsheet_safe(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """UTF-8 with a BOM: without it, Excel on Chinese Windows reads the file as GBK and garbles it."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow([spreadsheet_safe(h) for h in headers])
    for row in rows:
        writer.writerow(["" if value is None else spreadsheet_safe(value) for value in row])
    return buffer.getvalue().encode("utf-8-sig")
