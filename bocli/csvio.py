"""CSV exchange files: reading filled-in results (strictly) and writing suggestions and exports.

A results file has a header row and one row per trial::

    trial_id,temperature,conc,cycles,solvent,yield,status
    4,55.2,0.0121,3,ethanol,0.81,
    5,23.9,0.5,9,water,,failed
    ,40,0.1,2,dmso,0.42,

Columns: ``trial_id`` (empty for results obtained outside bocli), one column per parameter, the
objective column, and optionally ``status`` (complete / failed / abandoned; empty means complete when
the objective is filled in, and "no news yet" when it is empty). The informational columns written by
``bocli export`` (``proposed_by``, ``created_at``, ``completed_at``) are accepted and ignored.

Text columns: ``notes`` (always accepted) and the space's ``metadata`` columns hold free text per
trial, never modeled. A filled cell is the trial's text; an empty cell tells nothing (it never clears
stored text), so a row may carry text alone, e.g. a note on a trial still pending.

What spreadsheets do to CSV files is accepted: a UTF-8 byte-order mark, UTF-16 "Unicode text", ``;`` or
tab as the separator with decimal commas (``1,5``), blank rows, trailing empty columns, whitespace around
cells, ``3.0`` for an integer, ``TRUE`` for ``true``. Everything else is a problem reported as
``FILE: row R, column 'C': what is wrong``; rows are numbered as a spreadsheet shows them (the header is
row 1). Reading never touches a study: the caller decides, and stores all rows or none.

Stdlib only (``csv``), so ``bocli tell`` starts fast.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import json
import math
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bocli.errors import UserError
from bocli.space import INFO_COLUMNS, RESULT_COLUMNS, CategoricalParam, Space, SpaceError, _one_line

__all__ = [
    "INFO_COLUMNS",
    "CsvError",
    "CsvRow",
    "CsvTable",
    "format_cell",
    "read_results",
    "text_columns",
    "write_csv",
]

MAX_PROBLEMS_SHOWN = 10

_STATUS_ALIASES = {
    "complete": "complete",
    "completed": "complete",
    "done": "complete",
    "ok": "complete",
    "failed": "failed",
    "fail": "failed",
    "failure": "failed",
    "error": "failed",
    "abandoned": "abandoned",
    "abandon": "abandoned",
    "cancelled": "abandoned",
    "canceled": "abandoned",
    "skipped": "abandoned",
    "pending": "pending",
}
# what spreadsheets and R/pandas write for a missing or non-finite number
_NON_FINITE = {
    "nan",
    "+nan",
    "-nan",
    "inf",
    "+inf",
    "-inf",
    "infinity",
    "+infinity",
    "-infinity",
    "na",
    "n/a",
    "#n/a",
    "#num!",
    "#div/0!",
    "#value!",
    "null",
    "none",
}
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_DECIMAL_COMMA = re.compile(r"[+-]?(\d+,\d*|,\d+)([eE][+-]?\d+)?")


def _show(text: str, limit: int = 40) -> str:
    """``text`` as it can be echoed on one line: control characters escaped, long text cut."""
    shown = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


class CsvError(UserError, ValueError):
    """A CSV file cannot be used; every line of the message names the file, row and column."""

    def __init__(self, problems: Sequence[str]) -> None:
        # One problem is one line, whatever a file's cells held (quoted newlines, NULs).
        self.problems = [_one_line(p) for p in problems]
        shown = self.problems[:MAX_PROBLEMS_SHOWN]
        more = len(self.problems) - len(shown)
        lines = list(shown)
        if more:
            lines.append(f"... and {more} more problem(s)")
        if len(self.problems) > 1:
            lines.append(f"{len(self.problems)} problems; nothing was recorded")
        super().__init__("\n".join(lines))


@dataclass
class CsvRow:
    """One data row of a results file, parsed and validated against the space.

    Attributes:
        row: Spreadsheet row number (the header is row 1).
        trial_id: The trial it reports on, or None for a result obtained outside bocli.
        params: Validated parameter values (only when every parameter cell was valid).
        value: The (first) objective's value (finite), or None when empty or not applicable.
        status: ``complete`` / ``failed`` / ``abandoned`` / ``pending``, or None for "no news"
            (empty objective and no status).
    """

    row: int
    trial_id: int | None
    params: dict[str, Any] | None
    value: float | None
    status: str | None
    ok: bool = True
    outcomes: dict[str, float] | None = None
    """Every outcome's value (several outcomes, complete rows only), in ``outcome_names`` order."""
    notes: str | None = None
    """The ``notes`` cell, when filled."""
    metadata: dict[str, str] | None = None
    """The filled metadata cells, ``{column: text}`` (None when none is filled)."""

    @property
    def has_text(self) -> bool:
        return bool(self.notes or self.metadata)


@dataclass
class CsvTable:
    """A parsed results file: its rows, and every problem found (empty when usable)."""

    label: str
    columns: list[str]
    rows: list[CsvRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    delimiter: str = ","


def text_columns(space: Space) -> list[str]:
    """The free-text columns of ``space``'s files: ``notes``, then its declared metadata."""
    return ["notes", *space.metadata]


# ----- reading -----------------------------------------------------------------------------------
def read_results(source: str | Path | bytes, space: Space, label: str | None = None) -> CsvTable:
    """Parse and validate a results file against ``space``; never raises for bad content.

    Args:
        source: A path, or the file's bytes (then ``label`` names it in messages).
        space: The study's space (parameter columns, objective column).
        label: The name used in messages (default: the path as given).

    Returns:
        The table; ``table.problems`` lists everything wrong (each a full message).
    """
    if isinstance(source, bytes):
        data, label = source, label or "<input>"
    else:
        label = label or str(source)
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            return CsvTable(label, [], problems=[f"{label}: file not found"])
        except IsADirectoryError:
            return CsvTable(label, [], problems=[f"{label}: is a directory, not a CSV file"])
        except OSError as e:
            return CsvTable(label, [], problems=[f"{label}: cannot read ({e.strerror or e})"])
    text, problem = _decode(data, label)
    if problem:
        return CsvTable(label, [], problems=[problem])
    if not text.strip():
        return CsvTable(label, [], problems=[f"{label}: the file is empty"])
    expected = _expected_columns(space)
    delimiter = _sniff_delimiter(text, expected)
    table = CsvTable(label, [], delimiter=delimiter)
    records: list[list[str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        for record in reader:
            records.append(record)
    except csv.Error as e:
        hint = "; is a quote left open?" if "end of data" in str(e) else ""
        table.problems.append(f"{label}: row {len(records) + 1}: not valid CSV ({e}{hint})")
        return table
    # the header is the first non-blank record; rows keep their spreadsheet numbers
    start = next((i for i, r in enumerate(records) if any(c.strip() for c in r)), None)
    if start is None:
        table.problems.append(f"{label}: the file is empty")
        return table
    header = [c.strip().lstrip("\ufeff").strip() for c in records[start]]
    body = [(i + 1, r) for i, r in enumerate(records) if i > start]
    columns = _check_header(table, header, body, space)
    if table.problems:
        return table
    table.columns = [c for c in columns if c is not None]
    decimal_comma = delimiter in (";", "\t")
    for row_no, cells in body:
        if not any(c.strip() for c in cells):
            continue
        row = _parse_row(table, row_no, cells, columns, space, decimal_comma)
        if row is not None:
            table.rows.append(row)
    if not table.rows and not table.problems:
        table.problems.append(f"{label}: no data rows below the header")
    _check_duplicate_ids(table)
    return table


def _decode(data: bytes, label: str) -> tuple[str, str | None]:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), None
        except UnicodeDecodeError as e:
            return "", f"{label}: not valid UTF-16 text ({e.reason} at byte {e.start})"
    if b"\x00" in data:
        return "", f"{label}: a binary file, not CSV text"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as e:
        return "", (
            f"{label}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "save it as 'CSV UTF-8'"
        )


def _expected_columns(space: Space) -> set[str]:
    return {
        "trial_id",
        "status",
        "notes",
        *space.metadata,
        *space.outcome_names,
        *space.names,
        *RESULT_COLUMNS,
        *INFO_COLUMNS,
    }


def _sniff_delimiter(text: str, expected: set[str]) -> str:
    """The separator that makes the header look most like the expected columns."""
    # the line ends the csv module knows (not str.splitlines, which also splits at \x0b, \x1c, \x85,
    # \u2028 and others that are data inside a cell)
    first = next((ln for ln in re.split(r"\r\n|[\r\n]", text) if ln.strip()), "")
    best, best_score = ",", (-1, -1)
    for d in (",", ";", "\t"):
        try:
            cells = next(csv.reader([first], delimiter=d))
        except (csv.Error, StopIteration):
            continue
        names = {c.strip().lstrip("\ufeff").strip().lower() for c in cells}
        score = (len(names & {e.lower() for e in expected}), len(cells))
        if score > best_score:
            best, best_score = d, score
    return best


def _check_header(
    table: CsvTable, header: list[str], body: list[tuple[int, list[str]]], space: Space
) -> list[str | None]:
    """Map header cells to canonical column names (None = an ignorable empty column)."""
    label = table.label
    # bookkeeping and text columns are matched in any letter case (no parameter or outcome
    # may differ from them only in case)
    reserved = {n.casefold(): n for n in ("trial_id", "status", "notes", *space.metadata)}
    writable = [*space.names, *space.outcome_names, "trial_id", "status", *text_columns(space)]
    known = [*writable, *RESULT_COLUMNS, *INFO_COLUMNS]
    columns: list[str | None] = []
    for j, name in enumerate(header):
        if not name:
            if any(j < len(r) and r[j].strip() for _, r in body):
                table.problems.append(f"{label}: row 1, column {j + 1}: the column has no name")
            columns.append(None)
            continue
        canonical = reserved.get(name.casefold(), name)
        if canonical not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            table.problems.append(
                f"{label}: row 1, column '{_show(name)}': unknown column"
                + (f" (did you mean '{hint[0]}'?)" if hint else "")
                + f"; expected: {', '.join(writable)}"
            )
        columns.append(canonical)
    seen: dict[str, int] = {}
    for j, c in enumerate(columns):
        if c is None:
            continue
        if c in seen:
            table.problems.append(
                f"{label}: row 1, column '{_show(c)}': appears twice (columns {seen[c] + 1} and {j + 1})"
            )
        seen.setdefault(c, j)
    for name in [*space.names, *space.outcome_names]:
        if name not in seen:
            table.problems.append(f"{label}: row 1: missing column '{name}'")
    return columns


def _parse_row(
    table: CsvTable,
    row_no: int,
    cells: list[str],
    columns: list[str | None],
    space: Space,
    decimal_comma: bool,
) -> CsvRow | None:
    label = table.label
    found: list[tuple[int, str]] = []  # (column position, message): reported in column order

    def problem(column: str, msg: str) -> None:
        found.append((columns.index(column), f"{label}: row {row_no}, column '{column}': {msg}"))

    if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns) :]):
        table.problems.append(
            f"{label}: row {row_no}: {len(cells)} cells but the header has {len(columns)} columns"
        )
        return None
    values: dict[str, str] = {}
    for j, c in enumerate(columns):
        if c is not None:
            values[c] = cells[j].strip() if j < len(cells) else ""

    trial_id: int | None = None
    raw_id = values.get("trial_id", "")
    if raw_id:
        num = _number(raw_id, decimal_comma)
        if num is None or not math.isfinite(num) or num != int(num) or num < 0:
            problem("trial_id", f"{raw_id!r} is not a trial id (a whole number >= 0)")
        else:
            trial_id = int(num)

    status: str | None = None
    raw_status = values.get("status", "")
    if raw_status:
        status = _STATUS_ALIASES.get(raw_status.lower())
        if status is None:
            problem("status", f"unknown status {raw_status!r}; use complete, failed or abandoned")

    outcomes: dict[str, float] = {}
    filled: list[str] = []
    for obj in space.outcome_names:
        raw_value = values.get(obj, "")
        if not raw_value:
            continue
        filled.append(obj)
        num = _number(raw_value, decimal_comma)
        if num is None:
            problem(obj, f"{raw_value!r} is not a number{_comma_hint(raw_value, decimal_comma)}")
        elif not math.isfinite(num):
            if status in (None, "complete"):
                problem(
                    obj,
                    f"{raw_value!r} is not a result; leave it empty (not measured yet) "
                    "or set status to failed",
                )
        elif status in ("failed", "abandoned", "pending"):
            problem(obj, f"{_a(status)} row must leave '{obj}' empty (got {raw_value})")
        else:
            outcomes[obj] = num
    empty = [o for o in space.outcome_names if o not in filled]
    if status == "complete" and empty:
        for obj in empty:
            problem(obj, "status is complete but the value is empty")
    elif filled and empty and status is None:
        for obj in empty:
            problem(
                obj,
                f"empty, but {', '.join(repr(f) for f in filled)} "
                f"{'is' if len(filled) == 1 else 'are'} filled: a result needs every outcome "
                f"({', '.join(space.outcome_names)}); fill it, or set status to failed",
            )
    value: float | None = None
    complete = not empty and len(outcomes) == len(space.outcome_names)
    if complete:
        value = outcomes[space.objective.name]
    if value is not None and status is None:
        status = "complete"
    if trial_id is None and status in ("abandoned", "pending"):
        problem("status", f"{_a(status)} row needs a trial_id")

    params: dict[str, Any] | None = {}
    for p in space.parameters:
        raw = values.get(p.name, "")
        if not raw:
            problem(p.name, "empty; every parameter needs a value")
            params = None
            continue
        try:
            v = _param_value(p, raw, decimal_comma)
        except SpaceError as e:
            problem(p.name, _strip_param_prefix(str(e), p.name))
            params = None
            continue
        if params is not None:
            params[p.name] = v
    table.problems.extend(msg for _, msg in sorted(found, key=lambda f: f[0]))
    several = None if space.is_single_outcome or value is None else outcomes
    metadata = {m: values[m] for m in space.metadata if values.get(m)}
    return CsvRow(
        row_no,
        trial_id,
        params,
        value,
        status,
        ok=not found,
        outcomes=several,
        notes=values.get("notes") or None,
        metadata=metadata or None,
    )


def _param_value(p: Any, raw: str, decimal_comma: bool) -> Any:
    if isinstance(p, CategoricalParam):
        try:
            return p.validate(raw)
        except SpaceError:
            # spreadsheets rewrite 2 as 2.0 and true as TRUE
            num = _number(raw, decimal_comma)
            for c in p.choices:
                if isinstance(c, bool):
                    if raw.lower() == str(c).lower():
                        return c
                elif isinstance(c, int | float) and num is not None and float(c) == num:
                    return c
            raise
    num = _number(raw, decimal_comma)
    if num is None:
        raise SpaceError(f"{raw!r} is not a number{_comma_hint(raw, decimal_comma)}")
    if not math.isfinite(num):
        raise SpaceError(f"{raw!r} is not a finite number")
    # whole numbers as ints, so a message reads "95 is outside [20, 80]" as the user typed it
    return p.validate(int(num) if num.is_integer() and abs(num) < 1e15 else num)


def _strip_param_prefix(msg: str, name: str) -> str:
    prefix = f"parameter '{name}': "
    return msg[len(prefix) :] if msg.startswith(prefix) else msg


def _number(raw: str, decimal_comma: bool) -> float | None:
    """A cell as a float (``inf``/``nan`` for the non-finite spellings), or None if not a number."""
    s = raw.strip()
    if s.lower() in _NON_FINITE:
        low = s.lower()
        return -math.inf if low.startswith("-inf") else math.inf if "inf" in low else math.nan
    if _NUMBER.fullmatch(s):
        return float(s)
    if decimal_comma and _DECIMAL_COMMA.fullmatch(s):
        return float(s.replace(",", "."))
    return None


def _comma_hint(raw: str, decimal_comma: bool) -> str:
    if not decimal_comma and _DECIMAL_COMMA.fullmatch(raw.strip()):
        return " (use a decimal point, or save the file with ';' as the separator)"
    return ""


def _check_duplicate_ids(table: CsvTable) -> None:
    first: dict[int, int] = {}
    for r in table.rows:
        if r.trial_id is None:
            continue
        if r.trial_id in first:
            table.problems.append(
                f"{table.label}: row {r.row}, column 'trial_id': duplicate trial_id {r.trial_id} "
                f"(also in row {first[r.trial_id]})"
            )
            r.ok = False
        else:
            first[r.trial_id] = r.row


# ----- writing -----------------------------------------------------------------------------------
def format_cell(value: Any) -> str:
    """A value as a CSV cell: floats in their shortest exact form, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)  # e.g. a trial's fit diagnostics
    return str(value)


def to_csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([format_cell(r.get(c)) for c in columns])
    return buf.getvalue()


def write_csv(path: str | Path, text: str, *, durable: bool = True) -> None:
    """Write a file atomically (temporary file + rename), so a reader never sees half of it.

    ``durable=False`` skips the fsync: for exports that bocli rewrites from the study anyway
    (a run's trials.csv), where a power cut may leave the previous version, never a torn one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write ({e.strerror or e})") from None


def _a(word: str | None) -> str:
    """``word`` with its indefinite article ("an abandoned", "a failed")."""
    return f"{'an' if (word or ' ')[0] in 'aeiou' else 'a'} {word}"
