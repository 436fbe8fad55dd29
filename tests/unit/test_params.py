import pytest

from fedcloud_lib.errors import ParameterError, RunbookError
from fedcloud_lib.params import (as_declared, load_value_files, parse_override,
                                  parse_parameters_cell, validate_values)

pytestmark = pytest.mark.unit

CELL = '''
ticket: str = ""          # request ticket number [required; pattern=[0-9]+]
cloudlet: str = "testing" # cloudlet to act on [choices=production|testing]
volume_gb: int = 0        # size of /srv in GiB, 0 for none [min=0; max=500]
ratio: float = 0.5        # a fraction [min=0; max=1]
db_password: str = ""     # database password [secret]
tags: list[str] = []      # labels [max=3]
sizes: dict[str, int] = {}  # sizes by name
note: str | None = None   # free text
approve: bool = False     # apply the plan
'''


def specs():
    return parse_parameters_cell(CELL)


def test_declarations_are_read_with_types_help_and_constraints():
    s = {p.name: p for p in specs()}
    assert list(s) == ["ticket", "cloudlet", "volume_gb", "ratio", "db_password", "tags",
                       "sizes", "note", "approve"]
    assert s["ticket"].required and s["ticket"].pattern == "[0-9]+"
    assert s["ticket"].help == "request ticket number"
    assert s["cloudlet"].choices == ("production", "testing")
    assert (s["volume_gb"].min, s["volume_gb"].max) == (0, 500)
    assert s["db_password"].secret and not s["db_password"].required
    assert str(s["tags"].type) == "list[str]" and str(s["note"].type) == "str | None"
    assert s["approve"].default is False and s["approve"].help == "apply the plan"


def test_valid_values_are_coerced_and_defaults_filled():
    out = validate_values(specs(), {"ticket": 1234, "volume_gb": 20, "ratio": 1, "tags": ["a"]})
    assert out["ticket"] == "1234"          # YAML reads 1234 as int: accepted for str
    assert out["ratio"] == 1.0 and isinstance(out["ratio"], float)
    assert out["cloudlet"] == "testing" and out["note"] is None and out["approve"] is False


@pytest.mark.parametrize("name,value,needle", [
    ("ticket", "12a", "does not match /[0-9]+/"),
    ("cloudlet", "staging", "not one of 'production', 'testing'"),
    ("volume_gb", 501, "above the maximum 500"),
    ("volume_gb", -1, "below the minimum 0"),
    ("volume_gb", "ten", "expected int, got str"),
    ("volume_gb", True, "expected int, got bool"),
    ("approve", "yes please", "expected bool, got str"),
    ("tags", ["a", "b", "c", "d"], "length 4 is above the maximum 3"),
    ("tags", ["a", None], "expected list[str]"),
    ("sizes", {"a": "x"}, "expected dict[str, int]"),
])
def test_each_bad_value_is_named_with_value_and_what_is_allowed(name, value, needle):
    values = {"ticket": "1", name: value}
    with pytest.raises(ParameterError) as e:
        validate_values(specs(), values, runbook="rb")
    (problem,) = e.value.problems
    assert problem.startswith(f"{name}: ") and needle in problem
    assert repr(value) in problem and "allowed:" in problem
    assert e.value.exit_code == 2


def test_unknown_and_missing_required_are_all_reported_at_once():
    with pytest.raises(ParameterError) as e:
        validate_values(specs(), {"tikcet": "1", "cloudlet": "x"}, runbook="rb")
    text = "\n".join(e.value.problems)
    assert "tikcet: unknown parameter for rb" in text and "known parameters: ticket" in text
    assert "ticket: a value is required and none was given" in text
    assert "cloudlet: 'x' is not allowed" in text
    assert len(e.value.problems) == 3


def test_secret_values_never_appear_in_errors():
    with pytest.raises(ParameterError) as e:
        validate_values(specs(), {"ticket": "1", "db_password": ["x12345678"]}, runbook="rb")
    assert "x12345678" not in str(e.value) and "secret value hidden" in str(e.value)


def test_required_empty_string_is_refused():
    with pytest.raises(ParameterError, match="ticket: a value is required"):
        validate_values(specs(), {"ticket": ""})


@pytest.mark.parametrize("src,needle", [
    ("x = 1", "needs a type annotation"),
    ("x: set = 1", "unsupported annotation"),
    ("x: int = 1 + y", "must be a literal"),
    ("x: int = 1  # [min=5]", "not allowed by its own declaration"),
    ("x: str = ''  # [colour=red]", "unknown constraint"),
    ("x: str = ''  # [pattern=(]", "invalid pattern"),
    ("print('hi')", "only `name: type = value`"),
    ("x: int = 1\nx: int = 2", "declared twice"),
])
def test_malformed_parameter_cells_are_runbook_errors(src, needle):
    with pytest.raises(RunbookError, match=needle):
        parse_parameters_cell(src)


def test_brackets_in_help_text_are_not_constraints():
    (p,) = parse_parameters_cell("x: str = ''  # see [the docs] for details")
    assert p.help == "see [the docs] for details" and p.pattern is None


def test_files_merge_in_order_then_overrides(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("ticket: '1'\ncloudlet: production\nvolume_gb: 5\n")
    b.write_text("volume_gb: 7\n")
    merged = load_value_files([a, b])
    assert merged == {"ticket": "1", "cloudlet": "production", "volume_gb": 7}
    s = {p.name: p for p in specs()}
    assert parse_override(s["volume_gb"], "9") == 9
    assert parse_override(s["ticket"], "0042") == "0042"     # str stays text
    assert parse_override(s["approve"], "true") is True
    assert parse_override(s["tags"], "[a, b]") == ["a", "b"]


def test_bad_parameter_files_are_parameter_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ParameterError, match="must be a mapping"):
        load_value_files([bad])
    with pytest.raises(ParameterError, match="does not exist"):
        load_value_files([tmp_path / "missing.yaml"])
    bad.write_text("a: [unclosed\n")
    with pytest.raises(ParameterError, match="not valid YAML"):
        load_value_files([bad])


# ---------------------------------------------------------------- issue 7: bad values
STR_CELL = '''
ticket: str = ""     # ticket [required]
ident: str = ""      # an identifier
count: int = 1       # how many
ratio: float = 0.5   # a fraction [min=0; max=1]
tags: list[str] = [] # labels
password: str = ""   # a password [secret]
'''


def read(tmp_path, text, cell=STR_CELL):
    f = tmp_path / "p.yaml"
    f.write_bytes(text.encode() if isinstance(text, str) else text)
    sp = parse_parameters_cell(cell)
    return validate_values(sp, load_value_files([f], sp), runbook="rb")


def test_nan_is_refused_for_a_bounded_float():
    s = {p.name: p for p in specs()}
    for raw in (".nan", ".NaN", ".inf", "-.inf"):
        with pytest.raises(ParameterError, match="ratio: .* is not allowed"):
            validate_values(specs(), {"ticket": "1", "ratio": parse_override(s["ratio"], raw)})
    with pytest.raises(ParameterError, match="not a number"):
        validate_values(parse_parameters_cell("x: float = 0.0  # any float"),
                        {"x": float("nan")})


@pytest.mark.parametrize("written", ["0123", "0x1F", "12:30", "1_000", "yes", "2026-01-02", "1e3"])
def test_str_parameters_are_read_as_written(tmp_path, written):
    out = read(tmp_path, f"ticket: {written}\nident: {written}\ntags: [{written}]\n")
    assert out["ticket"] == written and out["ident"] == written and out["tags"] == [written]


@pytest.mark.parametrize("written,needle", [("0123", "octal"), ("12:30", "sexagesimal"),
                                            ("1_000", "decimal")])
def test_numbers_written_in_yaml_1_1_forms_are_refused_not_reinterpreted(tmp_path, written, needle):
    with pytest.raises(ParameterError, match=f"count: written {written}.*{needle}"):
        read(tmp_path, f"ticket: '1'\ncount: {written}\n")
    assert read(tmp_path, "ticket: '1'\ncount: 0x1F\nratio: 0.25\n")["count"] == 31
    assert read(tmp_path, "ticket: '1'\ncount: 42\n")["count"] == 42


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    import time

    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)) + "tags: *j\nticket: '1'\n"
    t = time.monotonic()
    with pytest.raises(ParameterError, match="alias"):
        read(tmp_path, bomb)
    assert time.monotonic() - t < 5


def test_a_huge_parameter_file_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="too large"):
        read(tmp_path, "ticket: '1'\nident: '" + "x" * (2 << 20) + "'\n")


def test_non_utf8_file_deep_nesting_and_directories_are_parameter_errors(tmp_path):
    with pytest.raises(ParameterError, match="not UTF-8"):
        read(tmp_path, b"ticket: '1'\nident: caf\xe9\n")
    with pytest.raises(ParameterError, match="not valid YAML"):
        read(tmp_path, "tags: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ParameterError, match="cannot read"):
        load_value_files([tmp_path])
    with pytest.raises(ParameterError, match="mapping"):
        load_value_files([tmp_path / "p.yaml"]) if (tmp_path / "p.yaml").write_text("[1]") else None


def test_a_5000_digit_int_is_refused_without_a_traceback(tmp_path):
    digits = "7" * 5000
    with pytest.raises(ParameterError) as e:
        read(tmp_path, f"ticket: '1'\ncount: {digits}\n")
    assert "count:" in str(e.value) and len(str(e.value)) < 600
    s = {p.name: p for p in parse_parameters_cell(STR_CELL)}
    with pytest.raises(ParameterError) as e:
        validate_values(list(s.values()), as_declared(list(s.values()), {
            "ticket": "1", "count": parse_override(s["count"], digits)}))
    assert len(str(e.value)) < 600
    with pytest.raises(ParameterError, match="count: .*too large"):
        validate_values(list(s.values()), {"ticket": "1", "count": int(digits[:30])})
    # as a str parameter the digits are just text
    assert read(tmp_path, f"ticket: {digits}\n")["ticket"] == digits


def test_yaml_syntax_errors_do_not_quote_the_line(tmp_path):
    with pytest.raises(ParameterError) as e:
        read(tmp_path, "ticket: '1'\npassword: Hunter2-Secret: [oops\n")
    assert "Hunter2" not in str(e.value) and "line 2" in str(e.value)


def test_values_in_messages_are_cut_to_a_short_prefix_and_length():
    long = "s3cr3t-looking-value-" * 20
    with pytest.raises(ParameterError) as e:
        validate_values(specs(), {"ticket": "1", "pasword": long}, runbook="rb")
    msg = str(e.value)
    assert "pasword: unknown parameter" in msg and long not in msg and f"{len(long)}" in msg
