"""Every legal name and choice round-trips exactly through the CSV files bocli writes and reads.

Legal text is anything but the refused classes (see ``bocli.space``): commas, quotes, semicolons,
decimal-comma look-alikes, non-ASCII letters and emoji all come back as they were.
"""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from bocli.csvio import format_cell, read_results, to_csv_text
from bocli.space import CategoricalParam, FloatParam, IntParam, Objective, OrdinalParam, Space
from tests.bocli.test_space import legal_names, legal_text


@st.composite
def legal_spaces_and_rows(draw):
    """A space with legal random names and choices, and rows of valid points with results."""
    *names, objective = draw(st.lists(legal_names, min_size=2, max_size=5, unique=True))
    params = []
    for name in names:
        kind = draw(st.sampled_from(["cat", "cat", "ord", "float", "int"]))
        if kind == "float":
            params.append(FloatParam(name, -1e3, 1e3))
        elif kind == "int":
            params.append(IntParam(name, -5, 5))
        else:
            choices = draw(st.lists(legal_text, min_size=1, max_size=5, unique=True))
            params.append(
                (CategoricalParam if kind == "cat" else OrdinalParam)(name, tuple(choices))
            )
    space = Space(
        tuple(params), Objective(objective, draw(st.sampled_from(["minimize", "maximize"])))
    )
    rows = []
    for trial_id in range(draw(st.integers(1, 3))):
        row = {"trial_id": trial_id, objective: draw(st.floats(-1e6, 1e6))}
        for p in params:
            if isinstance(p, FloatParam):
                row[p.name] = draw(st.floats(p.low, p.high))
            elif isinstance(p, IntParam):
                row[p.name] = draw(st.integers(p.low, p.high))
            else:
                row[p.name] = draw(st.sampled_from(p.choices))
        rows.append(row)
    return space, rows


def columns(space: Space) -> list[str]:
    return ["trial_id", *space.names, space.objective.name]


def check_read_back(data: bytes, space: Space, rows: list[dict]) -> None:
    table = read_results(data, space, label="batch.csv")
    assert table.problems == []
    assert [r.trial_id for r in table.rows] == [r["trial_id"] for r in rows]
    for got, want in zip(table.rows, rows, strict=True):
        assert got.params == {n: want[n] for n in space.names}
        assert all(type(got.params[n]) is type(want[n]) for n in space.names)
        assert got.value == want[space.objective.name]


@settings(max_examples=50, deadline=None)
@given(legal_spaces_and_rows())
def test_names_and_choices_round_trip_through_bocli_csv(sp):
    space, rows = sp
    text = to_csv_text(columns(space), rows)
    check_read_back(text.encode("utf-8"), space, rows)
    assert Space.from_json(space.to_json()) == space  # how a study keeps its space


@settings(max_examples=50, deadline=None)
@given(legal_spaces_and_rows())
def test_names_and_choices_round_trip_through_a_spreadsheet_export(sp):
    # what a spreadsheet in a decimal-comma locale saves: ';' separator, '1,5', CRLF, a BOM
    space, rows = sp
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    writer.writerow(columns(space))
    for r in rows:
        cells = []
        for c in columns(space):
            cell = format_cell(r[c])
            if isinstance(r[c], float):
                cell = cell.replace(".", ",")
            cells.append(cell)
        writer.writerow(cells)
    check_read_back(b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8"), space, rows)


def test_tricky_choices_in_both_separators():
    choices = ("a,b", 'say "hi"', "x;y", "1,5", "it's", "ü", "🙂", "a\u2007b", "nan", "#N/A")
    space = Space((CategoricalParam("c;d", choices), FloatParam("t,u", 0, 10)), Objective('y "%"'))
    rows = [{"trial_id": i, "c;d": c, "t,u": 1.5, 'y "%"': 0.25} for i, c in enumerate(choices)]
    check_read_back(to_csv_text(columns(space), rows).encode(), space, rows)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";")
    writer.writerow(columns(space))
    writer.writerows([r["trial_id"], r["c;d"], "1,5", "0,25"] for r in rows)
    check_read_back(buf.getvalue().encode(), space, rows)


def test_numeric_and_boolean_choices_round_trip_exactly():
    choices = (True, 1, 2.5, "x", False, 0, 0.1 + 0.2, 1e-7, 3.0, 10**20, -4)
    space = Space((CategoricalParam("c", choices), OrdinalParam("o", (1, 2.0, 4))))
    rows = [
        {"trial_id": i, "c": c, "o": (1, 2.0, 4)[i % 3], "objective": float(i)}
        for i, c in enumerate(choices)
    ]
    check_read_back(to_csv_text(columns(space), rows).encode(), space, rows)
