"""Spreadsheet files as operators upload them, built byte by byte (not with our own writer)."""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook


def csv_bytes(rows: list[list[object]], *, encoding: str = "utf-8-sig") -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


HEADER = ["question", "answer", "tags", "enabled"]
GOOD_ROWS = [
    ["如何申请退货？", "签收后7天内可在订单页申请退货。", "退货, 售后", "是"],
    ["怎么开发票？", "在订单详情页点击“申请开票”。", "发票，开票", "TRUE"],
    ["门店营业时间", "每天10:00-21:30。", "", ""],
    ["Do you ship to Hong Kong?", "Yes, by SF Express.", "shipping;overseas", "no"],
]


def numbered_rows(count: int, *, prefix: str = "批量问题") -> list[list[object]]:
    return [[f"{prefix} {n} 怎么办？", f"这是第 {n} 条答案。", "批量", "1"] for n in range(count)]
