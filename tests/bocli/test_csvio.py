"""Reading results files strictly (every message names file, row, column) and writing CSV."""

from __future__ import annotations

import codecs
import math
from pathlib import Path

import pytest

from bocli.csvio import CsvError, format_cell, read_results, to_csv_text, write_csv
from bocli.space import CategoricalParam, Space

SPACE = Space.from_dict(
    {
        "parameters": [
            {"name": "temperature", "type": "float", "low": 20, "high": 80},
            {"name": "conc", "type": "float", "low": 0.001, "high": 1, "log": True},
            {"name": "cycles", "type": "int", "low": 1, "high": 10},
            {"name": "solvent", "type": "categorical", "choices": ["water", "ethanol", "dmso"]},
        ],
        "objective": {"name": "yield", "direction": "maximize"},
    }
)
HEADER = "trial_id,temperature,conc,cycles,solvent,yield"


def parse(text: str | bytes, space: Space = SPACE):
    data = text.encode() if isinstance(text, str) else text
    return read_results(data, space, label="batch.csv")


def problems(text: str | bytes) -> list[str]:
    return parse(text).problems


def one_problem(text: str | bytes) -> str:
    p = problems(text)
    assert len(p) == 1, p
    return p[0]


def test_a_good_file() -> None:
    t = parse(
        f"{HEADER},status\n0,55.5,0.01,3,water,0.8,\n1,20,1,10,dmso,,failed\n,40,0.1,2,ethanol,0.5,\n"
    )
    assert t.problems == []
    r0, r1, r2 = t.rows
    assert (r0.row, r0.trial_id, r0.value, r0.status) == (2, 0, 0.8, "complete")
    assert r0.params == {"temperature": 55.5, "conc": 0.01, "cycles": 3, "solvent": "water"}
    assert isinstance(r0.params["cycles"], int)
    assert (r1.trial_id, r1.value, r1.status) == (1, None, "failed")
    assert (r2.trial_id, r2.status) == (None, "complete")


def test_empty_objective_without_status_is_no_news() -> None:
    t = parse(f"{HEADER}\n0,55.5,0.01,3,water,\n")
    assert t.problems == [] and t.rows[0].status is None and t.rows[0].value is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "batch.csv: the file is empty"),
        ("\n\n  \n", "batch.csv: the file is empty"),
        (HEADER + "\n", "batch.csv: no data rows below the header"),
        (
            "trial_id,temperature,conc,cycles,yield\n0,50,0.1,2,1\n",
            "batch.csv: row 1: missing column 'solvent'",
        ),
        (
            HEADER + ",temprature\n0,50,0.1,2,water,1,3\n",
            "batch.csv: row 1, column 'temprature': unknown column (did you mean 'temperature'?)",
        ),
        (
            HEADER + ",cycles\n0,50,0.1,2,water,1,3\n",
            "batch.csv: row 1, column 'cycles': appears twice (columns 4 and 7)",
        ),
        (
            HEADER + "\n0,hot,0.1,2,water,1\n",
            "batch.csv: row 2, column 'temperature': 'hot' is not a number",
        ),
        (
            HEADER + "\n0,95,0.1,2,water,1\n",
            "batch.csv: row 2, column 'temperature': 95 is outside [20, 80]",
        ),
        (
            HEADER + "\n0,50,0.1,2.5,water,1\n",
            "batch.csv: row 2, column 'cycles': 2.5 is not an integer",
        ),
        (
            HEADER + "\n0,50,0.1,0,water,1\n",
            "batch.csv: row 2, column 'cycles': 0 is outside [1, 10]",
        ),
        (
            HEADER + "\n0,50,0.1,2,watr,1\n",
            "batch.csv: row 2, column 'solvent': unknown category 'watr'",
        ),
        (
            HEADER + "\n0,50,0.1,2,water,abc\n",
            "batch.csv: row 2, column 'yield': 'abc' is not a number",
        ),
        (
            HEADER + "\n0,50,0.1,2,water,nan\n",
            "batch.csv: row 2, column 'yield': 'nan' is not a result",
        ),
        (
            HEADER + "\n0,50,0.1,2,water,-inf\n",
            "batch.csv: row 2, column 'yield': '-inf' is not a result",
        ),
        (
            HEADER + "\n0,50,0.1,2,water,#DIV/0!\n",
            "batch.csv: row 2, column 'yield': '#DIV/0!' is not a result",
        ),
        (
            HEADER + "\n0,inf,0.1,2,water,1\n",
            "batch.csv: row 2, column 'temperature': 'inf' is not a finite number",
        ),
        (HEADER + "\n0,,0.1,2,water,1\n", "batch.csv: row 2, column 'temperature': empty"),
        (
            HEADER + "\nx,50,0.1,2,water,1\n",
            "batch.csv: row 2, column 'trial_id': 'x' is not a trial id",
        ),
        (
            HEADER + "\n-1,50,0.1,2,water,1\n",
            "batch.csv: row 2, column 'trial_id': '-1' is not a trial id",
        ),
        (
            HEADER + "\n0,50,0.1,2,water,1,7\n",
            "batch.csv: row 2: 7 cells but the header has 6 columns",
        ),
        (
            HEADER + "\n0,50,0.1,2,water,1\n\n0,51,0.1,2,water,1\n",
            "batch.csv: row 4, column 'trial_id': duplicate trial_id 0 (also in row 2)",
        ),
        (
            HEADER + ",status\n0,50,0.1,2,water,1,maybe\n",
            "batch.csv: row 2, column 'status': unknown status 'maybe'",
        ),
        (
            HEADER + ",status\n0,50,0.1,2,water,1,failed\n",
            "batch.csv: row 2, column 'yield': a failed row must leave 'yield' empty",
        ),
        (
            HEADER + ",status\n0,50,0.1,2,water,,complete\n",
            "batch.csv: row 2, column 'yield': status is complete but the value is empty",
        ),
        (
            HEADER + ",status\n,50,0.1,2,water,,abandoned\n",
            "batch.csv: row 2, column 'status': an abandoned row needs a trial_id",
        ),
        (HEADER + '\n0,"1,5",0.1,2,water,1\n', "use a decimal point, or save the file with ';'"),
        ('trial_id,temperature\n0,"unterminated\n', "batch.csv: row 2: not valid CSV"),
        (
            b"trial_id,temperature\n0,\xe9t\xe9\n",
            "batch.csv: not UTF-8 text (byte 0xe9 at offset 23)",
        ),
        (b"\x00\x01\x02binary", "batch.csv: a binary file"),
    ],
)
def test_each_problem_names_file_row_and_column(text: str | bytes, expected: str) -> None:
    msgs = problems(text)
    assert any(expected in m for m in msgs), msgs
    assert all(m.startswith("batch.csv: ") for m in msgs)


def test_every_problem_is_reported_at_once() -> None:
    msgs = problems(HEADER + "\n0,95,0.1,2,water,1\n1,50,0.1,2,wine,x\n")
    assert [m.split(":")[1] for m in msgs] == [
        " row 2, column 'temperature'",
        " row 3, column 'solvent'",
        " row 3, column 'yield'",
    ]  # in row, then column order
    err = CsvError(msgs)
    assert str(err).splitlines()[-1] == "3 problems; nothing was recorded"
    many = CsvError([f"p{i}" for i in range(25)])
    assert "... and 15 more problem(s)" in str(many)


def test_utf8_bom_is_accepted() -> None:
    t = parse(codecs.BOM_UTF8 + f"{HEADER}\n0,50,0.1,2,water,1\n".encode())
    assert t.problems == [] and t.rows[0].value == 1.0


def test_semicolon_separator_with_decimal_commas() -> None:
    text = "trial_id;temperature;conc;cycles;solvent;yield;status\r\n0;55,5;0,01;3;water;0,75;\r\n1;20;1;10;dmso;1.5;\r\n"
    t = parse(codecs.BOM_UTF8 + text.encode())
    assert t.problems == [] and t.delimiter == ";"
    assert t.rows[0].params == {"temperature": 55.5, "conc": 0.01, "cycles": 3, "solvent": "water"}
    assert [r.value for r in t.rows] == [0.75, 1.5]


def test_utf16_tab_separated_spreadsheet_export() -> None:
    text = "trial_id\ttemperature\tconc\tcycles\tsolvent\tyield\r\n0\t55,5\t0,01\t3\twater\t2,5\r\n"
    t = parse(text.encode("utf-16"))
    assert t.problems == [] and t.rows[0].value == 2.5


def test_spreadsheet_quirks_are_tolerated() -> None:
    # whitespace, upper-case reserved names, trailing empty columns, blank rows, 3.0 for 3
    text = (
        " Trial_ID , temperature ,conc,cycles,solvent,yield,STATUS,,\n"
        " 0 , 50 ,1e-2,3.0, dmso ,7,Failed,,\n"
        ",,,,,,,,\n"
        "1,50,0.1,3,water,8,,,\n"
    )
    t = parse(text.replace("7,Failed", ",Failed"))
    assert t.problems == []
    assert [(r.row, r.trial_id, r.status) for r in t.rows] == [(2, 0, "failed"), (4, 1, "complete")]
    assert t.rows[0].params == {"temperature": 50.0, "conc": 0.01, "cycles": 3, "solvent": "dmso"}


def test_numeric_and_boolean_categories_survive_spreadsheets() -> None:
    space = Space.from_dict(
        {
            "parameters": [
                {"name": "batch", "type": "ordinal", "values": [1, 2, 4, 8]},
                {"name": "flag", "type": "categorical", "choices": [True, False]},
            ]
        }
    )
    t = parse("batch,flag,objective\n4.0,TRUE,1\n8,false,2\n", space)
    assert t.problems == []
    assert [r.params for r in t.rows] == [{"batch": 4, "flag": True}, {"batch": 8, "flag": False}]
    assert (
        "unknown category"
        in read_results(b"batch,flag,objective\n3,true,1\n", space, "b").problems[0]
    )


def test_a_named_but_empty_file_column_is_reported(tmp_path: Path) -> None:
    assert problems(HEADER + ",\n0,50,0.1,2,water,1,stray\n") == [
        "batch.csv: row 1, column 7: the column has no name"
    ]
    missing = read_results(tmp_path / "nope.csv", SPACE)
    assert missing.problems == [f"{tmp_path / 'nope.csv'}: file not found"]


def test_format_cell_and_round_trip(tmp_path: Path) -> None:
    assert [format_cell(v) for v in (None, 3, 2.0, 0.1, 1e-7, True, "dmso", math.nan)] == [
        "",
        "3",
        "2",
        "0.1",
        "1e-07",
        "true",
        "dmso",
        "",
    ]
    rows = [{"trial_id": 0, "temperature": 1 / 3 * 60 + 20, "conc": 0.001234567, "cycles": 3,
             "solvent": "water, salty" if False else "water", "yield": 0.1 + 0.2}]  # fmt: skip
    text = to_csv_text([*HEADER.split(",")], rows)
    path = tmp_path / "out.csv"
    write_csv(path, text)
    t = read_results(path, SPACE)
    assert t.problems == []
    assert t.rows[0].params["temperature"] == rows[0]["temperature"]  # exact
    assert t.rows[0].value == 0.1 + 0.2
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_problem_is_one_line_whatever_a_cell_held() -> None:
    err = CsvError(["a\nb", "c\r\nd", "e\rf", "g\x0bh\x0ci\x1cj\x85k\u2028l\u2029m"])
    assert err.problems == ["a b", "c d", "e f", "g\\x0bh\\x0ci\\x1cj\\x85k\\u2028l\\u2029m"]
    assert all(len(p.splitlines()) == 1 for p in err.problems)
    assert len(str(err).splitlines()) == len(err.problems) + 1


def test_the_separator_is_sniffed_from_the_first_csv_line_not_from_splitlines() -> None:
    # \x0c, \x1c, \x85 and \u2028 are data inside a cell, not line ends (the csv module agrees)
    for junk in ("\x0c", "\x1c", "\x85", "\u2028"):
        text = f'"a{junk}b,c";{HEADER.replace(",", ";")}\n;0;50;0,1;2;water;1\n'
        t = parse(text)
        shown = f"a{junk.encode('unicode_escape').decode()}b,c"
        assert t.delimiter == ";"
        assert t.problems == [
            f"batch.csv: row 1, column '{shown}': unknown column; "
            "expected: temperature, conc, cycles, solvent, yield, trial_id, status, notes"
        ]
    # old-Mac spreadsheets end lines with a bare \r, which the csv module reads as a line end
    t = parse(HEADER.replace(",", ";") + "\r0;55,5;0,01;3;water;0,75\r")
    assert t.problems == [] and t.delimiter == ";" and t.rows[0].params["temperature"] == 55.5


def test_choices_that_look_like_numbers_or_separators_come_back_exactly() -> None:
    space = Space(
        (
            CategoricalParam("c", ("1,5", "1.5", "x;y", 'say "hi"', "nan", "TRUE")),
            CategoricalParam("n", (1.5, 2, True)),
        )
    )
    rows = [
        {"trial_id": 0, "c": "1,5", "n": 1.5, "objective": 1},
        {"trial_id": 1, "c": "1.5", "n": 2, "objective": 2},
        {"trial_id": 2, "c": "x;y", "n": True, "objective": 3},
        {"trial_id": 3, "c": 'say "hi"', "n": 1.5, "objective": 4},
        {"trial_id": 4, "c": "nan", "n": 2, "objective": 5},
        {"trial_id": 5, "c": "TRUE", "n": True, "objective": 6},
    ]
    text = to_csv_text(["trial_id", "c", "n", "objective"], rows)
    t = parse(text, space)
    assert t.problems == []
    assert [(r.params["c"], r.params["n"]) for r in t.rows] == [(r["c"], r["n"]) for r in rows]
    assert [type(r.params["n"]) for r in t.rows] == [type(r["n"]) for r in rows]
    # the same from a decimal-comma spreadsheet: 1,5 is the number, "1,5" the text choice
    semi = (
        "trial_id;c;n;objective\n"
        '0;1,5;1,5;1\n1;1.5;2,0;2\n2;"x;y";TRUE;3\n3;"say ""hi""";1,5;4\n4;nan;2;5\n5;TRUE;true;6\n'
    )
    t = parse(semi, space)
    assert t.problems == [] and t.delimiter == ";"
    assert [(r.params["c"], r.params["n"]) for r in t.rows] == [(r["c"], r["n"]) for r in rows]
