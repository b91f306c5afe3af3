"""ConfigDef parsing/validation, the validate JSON, .properties files and Connect's config definitions.

Expected messages and values are Kafka's (ConfigDef, ConfigDefTest, Properties.load,
ConnectorConfig/SinkConnectorConfig), so Connect users see the same behaviour.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caudal.connect.config_def import (
    NO_DEFAULT,
    ConfigDef,
    ConfigException,
    ConfigType,
    ConfigValue,
    Importance,
    NonEmptyString,
    NonEmptyStringWithoutControlChars,
    Password,
    Range,
    ValidList,
    ValidString,
    Width,
    format_value,
    parse_value,
)
from caudal.connect.connect_configs import (
    CONNECTOR_CONFIG,
    DISTRIBUTED_CONFIG,
    SINK_CONNECTOR_CONFIG,
    SOURCE_CONNECTOR_CONFIG,
    STANDALONE_CONFIG,
    WORKER_CONFIG,
    validate_sink_topics,
    validate_source,
)
from caudal.connect.properties import load_properties, parse_properties

# --------------------------------------------------------------------------- #
# parsing each type
# --------------------------------------------------------------------------- #

_GOOD = [
    (ConfigType.BOOLEAN, "true", True),
    (ConfigType.BOOLEAN, " FALSE ", False),
    (ConfigType.BOOLEAN, "True", True),
    (ConfigType.BOOLEAN, False, False),
    (ConfigType.STRING, "  hello world ", "hello world"),
    (ConfigType.STRING, "", ""),
    (ConfigType.INT, " 42 ", 42),
    (ConfigType.INT, "+7", 7),
    (ConfigType.INT, "-2147483648", -2**31),
    (ConfigType.INT, 2147483647, 2**31 - 1),
    (ConfigType.SHORT, "32767", 32767),
    (ConfigType.SHORT, "-1", -1),
    (ConfigType.LONG, "9223372036854775807", 2**63 - 1),
    (ConfigType.LONG, 5, 5),
    (ConfigType.DOUBLE, "1.5", 1.5),
    (ConfigType.DOUBLE, "1e3", 1000.0),
    (ConfigType.DOUBLE, ".5", 0.5),
    (ConfigType.DOUBLE, "2d", 2.0),
    (ConfigType.DOUBLE, 3, 3.0),
    (ConfigType.LIST, "a, b ,c", ["a", "b", "c"]),
    (ConfigType.LIST, "  ", []),
    (ConfigType.LIST, "", []),
    (ConfigType.LIST, "a,,b,", ["a", "", "b", ""]),
    (ConfigType.LIST, ["x", "y"], ["x", "y"]),
    (ConfigType.CLASS, " org.apache.kafka.connect.json.JsonConverter ", "org.apache.kafka.connect.json.JsonConverter"),
    (ConfigType.CLASS, "org.apache.kafka.connect.transforms.InsertField$Value",
     "org.apache.kafka.connect.transforms.InsertField$Value"),
    (ConfigType.CLASS, ConfigDef, "caudal.connect.config_def.ConfigDef"),
]


@pytest.mark.parametrize(("kind", "raw", "expected"), _GOOD)
def test_parse_good_values(kind: ConfigType, raw: object, expected: object) -> None:
    assert parse_value("k", raw, kind) == expected
    assert ConfigDef().define("k", kind).parse({"k": raw}) == {"k": expected}


def test_parse_accepts_type_names_and_java_double_spellings() -> None:
    assert parse_value("k", "7", "INT") == 7  # type: ignore[arg-type]
    assert parse_value("k", "-Infinity", ConfigType.DOUBLE) == float("-inf")
    assert parse_value("k", "NaN", ConfigType.DOUBLE) != parse_value("k", "NaN", ConfigType.DOUBLE)  # NaN


def test_parse_none_stays_none_and_password_is_hidden() -> None:
    assert parse_value("k", None, ConfigType.INT) is None
    secret = parse_value("k", " s3cret ", ConfigType.PASSWORD)
    assert isinstance(secret, Password) and secret.value == "s3cret"
    assert str(secret) == repr(secret) == "[hidden]" and "s3cret" not in repr({"k": secret})
    assert parse_value("k", secret, ConfigType.PASSWORD) is secret


_BAD = [
    (ConfigType.BOOLEAN, "yes", "Invalid value yes for configuration k: Expected value to be either true or false"),
    (ConfigType.BOOLEAN, 1, "Invalid value 1 for configuration k: Expected value to be either true or false"),
    (ConfigType.STRING, 5, "Invalid value 5 for configuration k: Expected value to be a string, but it was a builtins.int"),
    (ConfigType.INT, "hello", "Invalid value hello for configuration k: Not a number of type INT"),
    (ConfigType.INT, "42.5", "Invalid value 42.5 for configuration k: Not a number of type INT"),
    (ConfigType.INT, "1_000", "Invalid value 1_000 for configuration k: Not a number of type INT"),
    (ConfigType.INT, "2147483648", "Invalid value 2147483648 for configuration k: Not a number of type INT"),
    (ConfigType.INT, 42.5,
     "Invalid value 42.5 for configuration k: Expected value to be a 32-bit integer, but it was a builtins.float"),
    (ConfigType.INT, True,
     "Invalid value true for configuration k: Expected value to be a 32-bit integer, but it was a builtins.bool"),
    (ConfigType.SHORT, "32768", "Invalid value 32768 for configuration k: Not a number of type SHORT"),
    (ConfigType.SHORT, 1.0,
     "Invalid value 1.0 for configuration k: Expected value to be a 16-bit integer (short), but it was a builtins.float"),
    (ConfigType.LONG, "9223372036854775808", "Invalid value 9223372036854775808 for configuration k: Not a number of type LONG"),
    (ConfigType.LONG, "1e3", "Invalid value 1e3 for configuration k: Not a number of type LONG"),
    (ConfigType.DOUBLE, "abc", "Invalid value abc for configuration k: Not a number of type DOUBLE"),
    (ConfigType.DOUBLE, "inf", "Invalid value inf for configuration k: Not a number of type DOUBLE"),
    (ConfigType.DOUBLE, "Infinityd", "Invalid value Infinityd for configuration k: Not a number of type DOUBLE"),
    (ConfigType.LIST, 5, "Invalid value 5 for configuration k: Expected a comma separated list."),
    (ConfigType.CLASS, "not a class", "Invalid value not a class for configuration k: Class not a class could not be found."),
    (ConfigType.CLASS, 3, "Invalid value 3 for configuration k: Expected a Class instance or class name."),
    (ConfigType.PASSWORD, 3, "Invalid value 3 for configuration k: Expected value to be a string, but it was a builtins.int"),
]


@pytest.mark.parametrize(("kind", "raw", "message"), _BAD)
def test_parse_bad_values_with_kafka_messages(kind: ConfigType, raw: object, message: str) -> None:
    with pytest.raises(ConfigException) as exc:
        ConfigDef().define("k", kind).parse({"k": raw})
    assert str(exc.value) == message


@given(st.integers(min_value=-2**31, max_value=2**31 - 1))
def test_int_round_trips_within_java_range(n: int) -> None:
    assert parse_value("k", f" {n} ", ConfigType.INT) == n


@given(st.integers().filter(lambda n: not -2**31 <= n < 2**31))
def test_int_outside_java_range_is_rejected(n: int) -> None:
    with pytest.raises(ConfigException, match="Not a number of type INT"):
        parse_value("k", str(n), ConfigType.INT)


@given(st.lists(st.text(alphabet="abcXYZ0._-$", min_size=1), min_size=1))
def test_list_items_are_trimmed_around_commas(items: list[str]) -> None:
    assert parse_value("k", " " + " ,\t".join(items) + " ", ConfigType.LIST) == items


def test_format_value_prints_like_java() -> None:
    assert [format_value(v) for v in (None, True, 1.0, 1e20, 1.5e-5, 12345678.0, 0.001, ["a", "b"])] == [
        "null", "true", "1.0", "1.0E20", "1.5E-5", "1.2345678E7", "0.001", "[a, b]",
    ]


# --------------------------------------------------------------------------- #
# define / parse
# --------------------------------------------------------------------------- #

def test_defaults_are_parsed_at_definition_and_required_keys_enforced() -> None:
    d = (ConfigDef()
         .define("req", ConfigType.STRING)
         .define("n", ConfigType.INT, "5")
         .define("l", ConfigType.LIST, "a,b")
         .define("none", ConfigType.STRING, None))
    assert d.keys["n"].default == 5 and d.keys["req"].default is NO_DEFAULT and d.keys["req"].required
    assert d.parse({"req": "x", "unknown.key": "ignored"}) == {"req": "x", "n": 5, "l": ["a", "b"], "none": None}
    with pytest.raises(ConfigException) as exc:
        d.parse({})
    assert str(exc.value) == 'Missing required configuration "req" which has no default value.'


def test_parse_returns_fresh_list_defaults() -> None:
    d = ConfigDef().define("l", ConfigType.LIST, "a")
    d.parse({})["l"].append("b")
    assert d.parse({}) == {"l": ["a"]}


def test_define_rejects_duplicates_and_bad_defaults() -> None:
    d = ConfigDef().define("a", ConfigType.INT, 1)
    with pytest.raises(ConfigException, match="Configuration a is defined twice."):
        d.define("a", ConfigType.INT, 1)
    with pytest.raises(ConfigException, match="Not a number of type INT"):
        ConfigDef().define("b", ConfigType.INT, "x")
    with pytest.raises(ConfigException, match="Value must be at least 1"):
        ConfigDef().define("c", ConfigType.INT, 0, Range.at_least(1))


def test_define_records_metadata_and_is_chainable() -> None:
    d = ConfigDef().define("a", "INT", 1, None, "HIGH", "doc", "G", 2, "A!", width=Width.LONG, dependents=["b"]) \
                   .define("b", ConfigType.STRING, "")
    key = d.keys["a"]
    assert (key.type, key.importance, key.group, key.order_in_group, key.display_name, key.width, key.dependents) == (
        ConfigType.INT, Importance.HIGH, "G", 2, "A!", Width.LONG, ("b",))
    assert d.keys["b"].display_name == "b" and d.names() == ["a", "b"] and d.groups() == ["G"]
    with pytest.raises(TypeError):
        d.keys["c"] = key  # type: ignore[index]


def test_validator_runs_after_parse() -> None:
    d = ConfigDef().define("mode", ConfigType.STRING, "a", ValidString.in_("a", "b"))
    assert d.parse({"mode": " b "}) == {"mode": "b"}
    with pytest.raises(ConfigException) as exc:
        d.parse({"mode": "A"})
    assert str(exc.value) == "Invalid value A for configuration mode: String must be one of: a, b"


# --------------------------------------------------------------------------- #
# validators
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize(
    ("validator", "value", "message"),
    [
        (Range.at_least(1), 0, "Invalid value 0 for configuration k: Value must be at least 1"),
        (Range.at_least(1), None, "Invalid value null for configuration k: Value must be non-null"),
        (Range.between(0, 10), 11, "Invalid value 11 for configuration k: Value must be no more than 10"),
        (Range.between(0, 10), -1, "Invalid value -1 for configuration k: Value must be at least 0"),
        (Range.at_least(0.5), 0.25, "Invalid value 0.25 for configuration k: Value must be at least 0.5"),
        (ValidString.in_("none", "all"), "ALL", "Invalid value ALL for configuration k: String must be one of: none, all"),
        (ValidString.in_ignore_case("eager", "sessioned"), "lazy",
         "Invalid value lazy for configuration k: String must be one of (case insensitive): EAGER, SESSIONED"),
        (ValidString.in_ignore_case("a"), None,
         "Invalid value null for configuration k: String must be one of (case insensitive): A"),
        (NonEmptyString(), "", "Invalid value  for configuration k: String must be non-empty"),
        (ValidList.in_("x", "y"), ["x", "z"], "Invalid value z for configuration k: String must be one of: x, y"),
        (ValidList.in_("x"), None, "Configuration 'k' values must not be null."),
        (NonEmptyStringWithoutControlChars(), "", "Invalid value  for configuration k: String may not be empty"),
        (NonEmptyStringWithoutControlChars(), "a\nb",
         "Invalid value a\nb for configuration k: String may not contain control sequences but had the following "
         "ASCII chars: 10"),
    ],
)
def test_validators_reject_with_kafka_messages(validator, value: object, message: str) -> None:
    with pytest.raises(ConfigException) as exc:
        validator("k", value)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("validator", "value"),
    [
        (Range.at_least(1), 1), (Range.between(0, 10), 10), (ValidString.in_("a"), "a"),
        (ValidString.in_ignore_case("eager"), "EaGeR"), (NonEmptyString(), "x"), (NonEmptyString(), None),
        (ValidList.in_("x", "y"), []), (ValidList.in_("x", "y"), ["y", "x"]),
        (NonEmptyStringWithoutControlChars(), "my-connector"), (NonEmptyStringWithoutControlChars(), None),
    ],
)
def test_validators_accept(validator, value: object) -> None:
    validator("k", value)


def test_validator_descriptions() -> None:
    assert [str(v) for v in (Range.at_least(1), Range.between(0, 5), ValidString.in_("a", "b"),
                             ValidString.in_ignore_case("a"), ValidList.in_("x"), NonEmptyString())] == [
        "[1,...]", "[0,...,5]", "[a, b]", "(case insensitive) [A]", "[x]", "non-empty string"]


# --------------------------------------------------------------------------- #
# validate() and the validate JSON
# --------------------------------------------------------------------------- #

def _small_def() -> ConfigDef:
    return (ConfigDef()
            .define("name", ConfigType.STRING, NO_DEFAULT, NonEmptyString(), Importance.HIGH, "The name.",
                    "Common", 1, "Name")
            .define("tasks.max", ConfigType.INT, 1, Range.at_least(1), Importance.HIGH, "Tasks.", "Common", 2)
            .define("topics", ConfigType.LIST, "", None, Importance.LOW, "Topics.", "Topics", 1)
            .define("secret", ConfigType.PASSWORD, None, importance=Importance.LOW)
            .define("enabled", ConfigType.BOOLEAN, False))


def test_validate_collects_every_error_without_raising() -> None:
    values = _small_def().validate({"tasks.max": "zero", "enabled": "TRUE", "topics": " a , b", "other": "x"})
    assert list(values) == ["name", "tasks.max", "topics", "secret", "enabled"]
    assert values["name"] == ConfigValue("name", None, [], [
        'Missing required configuration "name" which has no default value.'])
    # As in Kafka, the unparseable value becomes null and the validator still runs on it.
    assert values["tasks.max"].errors == [
        "Invalid value zero for configuration tasks.max: Not a number of type INT",
        "Invalid value null for configuration tasks.max: Value must be non-null",
    ]
    assert values["enabled"].value is True and values["topics"].value == ["a", "b"]
    assert all(not v.errors for k, v in values.items() if k not in ("name", "tasks.max"))


def test_validate_response_is_kafkas_config_infos() -> None:
    infos = _small_def().validate_response("com.example.MySink", {"name": "", "tasks.max": "0", "secret": "pw",
                                                                  "topics": "a, b", "enabled": "TRUE"})
    assert list(infos) == ["name", "error_count", "groups", "configs"]
    assert infos["name"] == "com.example.MySink" and infos["groups"] == ["Common", "Topics"]
    assert infos["error_count"] == 2
    first = infos["configs"][0]
    assert list(first) == ["definition", "value"]
    assert first["definition"] == {
        "name": "name", "type": "STRING", "required": True, "default_value": None, "importance": "HIGH",
        "documentation": "The name.", "group": "Common", "width": "NONE", "display_name": "Name",
        "dependents": [], "order": 1,
    }
    assert first["value"] == {
        "name": "name", "value": "", "recommended_values": [],
        "errors": ["Invalid value  for configuration name: String must be non-empty"], "visible": True,
    }
    by_name = {c["value"]["name"]: c for c in infos["configs"]}
    assert by_name["tasks.max"]["definition"]["default_value"] == "1"
    assert by_name["tasks.max"]["value"]["value"] == "0"
    assert by_name["topics"]["definition"]["default_value"] == ""
    assert by_name["topics"]["value"]["value"] == "a,b"
    assert by_name["secret"]["value"]["value"] == "[hidden]" and by_name["secret"]["definition"]["default_value"] is None
    assert by_name["enabled"]["value"]["value"] == "true"
    assert by_name["enabled"]["definition"]["default_value"] == "false"


def test_validate_response_error_count_and_defaults_when_nothing_given() -> None:
    infos = _small_def().validate_response("X", {})
    assert infos["error_count"] == 1
    assert [c["value"]["value"] for c in infos["configs"]] == [None, "1", "", None, "false"]


class _Recommender:
    def valid_values(self, name: str, parsed: object) -> list[object]:
        return ["json", "avro"]

    def visible(self, name: str, parsed: dict[str, object]) -> bool:
        return parsed["enabled"] is True


def test_recommenders_and_undefined_dependents() -> None:
    d = (ConfigDef()
         .define("enabled", ConfigType.BOOLEAN, False, dependents=["format", "ghost"])
         .define("format", ConfigType.STRING, "json", recommender=_Recommender()))
    values = d.validate({})
    assert values["format"].recommended_values == ["json", "avro"] and values["format"].visible is False
    assert values["ghost"] == ConfigValue("ghost", None, [], ["ghost is referred in the dependents, but not defined."],
                                          False)
    infos = d.validate_response("X", {"enabled": "true"})
    assert infos["configs"][0] == {"definition": None, "value": {
        "name": "ghost", "value": None, "recommended_values": [],
        "errors": ["ghost is referred in the dependents, but not defined."], "visible": False}}
    assert infos["configs"][2]["value"]["visible"] is True and infos["error_count"] == 1
    with pytest.raises(ConfigException, match="referred in the dependents, but not defined: ghost"):
        d.parse({})


def test_merge_keeps_both_and_lets_the_other_definition_win() -> None:
    common = ConfigDef().define("a", ConfigType.INT, 1, group="G1").define("b", ConfigType.STRING, "x")
    own = ConfigDef().define("c", ConfigType.LIST, "", group="G2").define("b", ConfigType.STRING, "y")
    merged = common.merge(own)
    assert merged.names() == ["a", "b", "c"] and merged.groups() == ["G1", "G2"]
    assert merged.parse({}) == {"a": 1, "b": "y", "c": []}
    assert common.names() == ["a", "b"] and own.names() == ["c", "b"]
    assert common.merge(ConfigDef()).parse({"a": "2"}) == {"a": 2, "b": "x"}


# --------------------------------------------------------------------------- #
# .properties files
# --------------------------------------------------------------------------- #

def test_properties_separators_comments_and_whitespace() -> None:
    text = (
        "# a comment\n"
        "   ! another comment\n"
        "\n"
        "a=1\n"
        "b = 2\n"
        "c:3\n"
        "d 4\n"
        "\t e \t  =  5 \n"
        "f\n"
        "g=\n"
        "h==x\n"
        "i :=x\n"
        "j = a=b:c d\n"
    )
    assert parse_properties(text) == {
        "a": "1", "b": "2", "c": "3", "d": "4", "e": "5 ", "f": "", "g": "", "h": "=x", "i": "=x", "j": "a=b:c d",
    }


def test_properties_escapes() -> None:
    text = (
        r"tab=a\tb" "\n"
        r"nl=a\nb\rc\fd" "\n"
        r"slash=C:\\dir\\file" "\n"
        r"key\ with\ spaces\=and\:seps = v" "\n"
        r"\#not-a-comment=1" "\n"
        r"\!bang=2" "\n"
        r"lead=\  two spaces" "\n"
        r"uni=\u0041\u00e9\u20AC" "\n"
        r"pair=\uD83D\uDE00" "\n"
        r"other=\q\z" "\n"
    )
    assert parse_properties(text) == {
        "tab": "a\tb", "nl": "a\nb\rc\fd", "slash": "C:\\dir\\file", "key with spaces=and:seps": "v",
        "#not-a-comment": "1", "!bang": "2", "lead": "  two spaces", "uni": "Aé€", "pair": "😀", "other": "qz",
    }


def test_properties_continuations() -> None:
    text = (
        "fruits = apple, \\\n"
        "         banana, \\\n"
        "\t\tpear\n"
        "even = ends with backslash \\\\\n"
        "next = 1\n"
        "cut = a\\\n"
        "\n"
        "after = 2\n"
        "hash = x\\\n"
        "  #still value\n"
        "crlf = a\\\r\n  b\r\n"
        "cr = c\\\r  d\r"
        "eof = z\\"
    )
    assert parse_properties(text) == {
        "fruits": "apple, banana, pear", "even": "ends with backslash \\", "next": "1", "cut": "a", "after": "2",
        "hash": "x#still value", "crlf": "ab", "cr": "cd", "eof": "z",
    }


def test_properties_comment_lines_never_continue_and_duplicates_last_wins() -> None:
    assert parse_properties("# comment \\\nkey=1\nkey=2\n") == {"key": "2"}


@pytest.mark.parametrize("bad", [r"k=\u00G1", r"k=\u12", "k=\\u"])
def test_properties_malformed_unicode_escape_names_the_line(bad: str) -> None:
    with pytest.raises(ValueError, match=r"line 3: malformed \\uxxxx encoding"):
        parse_properties(f"a=1\n# c\n{bad}\n")


def test_load_properties_reads_utf8_or_latin1(tmp_path) -> None:
    utf8 = tmp_path / "utf8.properties"
    utf8.write_bytes("name=café\n".encode("utf-8"))
    latin1 = tmp_path / "latin1.properties"
    latin1.write_bytes("name=café\n".encode("iso-8859-1"))
    assert load_properties(utf8) == load_properties(str(latin1)) == {"name": "café"}


_STORE_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}


def _store_escape(text: str, is_key: bool) -> str:
    """Java's Properties.store escaping: every key space, a value's leading space, specials, non-ASCII as \\uXXXX."""
    out = []
    for index, char in enumerate(text):
        if char == " " and (is_key or index == 0):
            out.append("\\ ")
        elif char in "\\=:#!":
            out.append("\\" + char)
        elif char in _STORE_ESCAPES:
            out.append(_STORE_ESCAPES[char])
        elif not 0x20 <= ord(char) <= 0x7E:
            units = char.encode("utf-16-be")
            out.extend(f"\\u{units[i]:02X}{units[i + 1]:02X}" for i in range(0, len(units), 2))
        else:
            out.append(char)
    return "".join(out)


@given(st.dictionaries(st.text(), st.text()), st.sampled_from(["=", ":", " = ", " ", "\t: "]),
       st.sampled_from(["\n", "\r\n", "\r"]))
def test_properties_round_trip_through_java_escaping(props: dict[str, str], separator: str, newline: str) -> None:
    # An empty key needs a visible separator: leading whitespace is not part of a line.
    lines = [f"{_store_escape(k, True)}{separator if k else '='}{_store_escape(v, False)}" for k, v in props.items()]
    assert parse_properties(newline.join(["#generated", *lines])) == props


# --------------------------------------------------------------------------- #
# Connect's definitions
# --------------------------------------------------------------------------- #

def test_worker_defaults_match_kafka() -> None:
    parsed = WORKER_CONFIG.parse({})
    assert parsed["offset.flush.interval.ms"] == 60000 and parsed["offset.flush.timeout.ms"] == 5000
    assert parsed["task.shutdown.graceful.timeout.ms"] == 5000
    assert parsed["bootstrap.servers"] == ["localhost:9092"] and parsed["listeners"] == ["http://:8083"]
    assert parsed["key.converter"] == parsed["value.converter"] == "org.apache.kafka.connect.json.JsonConverter"
    assert parsed["header.converter"] == "org.apache.kafka.connect.storage.SimpleHeaderConverter"
    assert parsed["plugin.path"] == [] and parsed["metrics.port"] == -1 and parsed["rest.advertised.port"] is None
    assert "caudal" in WORKER_CONFIG.keys["metrics.port"].documentation
    with pytest.raises(ConfigException, match="Value must be no more than 65535"):
        WORKER_CONFIG.parse({"metrics.port": "70000"})


def test_standalone_and_distributed_required_keys() -> None:
    with pytest.raises(ConfigException, match='"offset.storage.file.filename"'):
        STANDALONE_CONFIG.parse({})
    assert STANDALONE_CONFIG.parse({"offset.storage.file.filename": "/tmp/o"})["offset.storage.file.filename"] == "/tmp/o"
    missing = {n for n, v in DISTRIBUTED_CONFIG.validate({}).items() if v.errors}
    assert missing == {"group.id", "config.storage.topic", "offset.storage.topic", "status.storage.topic"}
    parsed = DISTRIBUTED_CONFIG.parse({"group.id": "g", "config.storage.topic": "c", "offset.storage.topic": "o",
                                       "status.storage.topic": "s", "status.storage.replication.factor": "-1",
                                       "connect.protocol": "EAGER"})
    assert (parsed["offset.storage.partitions"], parsed["status.storage.partitions"]) == (25, 5)
    assert parsed["config.storage.replication.factor"] == parsed["offset.storage.replication.factor"] == 3
    assert parsed["status.storage.replication.factor"] == -1 and parsed["connect.protocol"] == "EAGER"
    assert (parsed["session.timeout.ms"], parsed["heartbeat.interval.ms"], parsed["rebalance.timeout.ms"],
            parsed["scheduled.rebalance.max.delay.ms"]) == (10000, 3000, 60000, 0)
    errors = DISTRIBUTED_CONFIG.validate({"config.storage.replication.factor": "0", "offset.storage.partitions": "0",
                                          "connect.protocol": "v2"})
    assert errors["config.storage.replication.factor"].errors == [
        "Invalid value 0 for configuration config.storage.replication.factor: Replication factor must be positive "
        "and not larger than the number of brokers in the Kafka cluster, or -1 to use the broker's default"]
    assert errors["offset.storage.partitions"].errors == [
        "Invalid value 0 for configuration offset.storage.partitions: Number of partitions must be positive, "
        "or -1 to use the broker's default"]
    assert errors["connect.protocol"].errors == [
        "Invalid value v2 for configuration connect.protocol: String must be one of (case insensitive): "
        "EAGER, COMPATIBLE, SESSIONED"]


def test_connector_defaults_and_groups_match_kafka() -> None:
    parsed = CONNECTOR_CONFIG.parse({"name": "c", "connector.class": "FileStreamSink"})
    assert parsed["tasks.max"] == 1 and parsed["errors.tolerance"] == "none"
    assert parsed["errors.retry.delay.max.ms"] == 60000 and parsed["errors.retry.timeout"] == 0
    assert parsed["errors.log.enable"] is False and parsed["errors.log.include.messages"] is False
    assert parsed["config.action.reload"] == "restart" and parsed["transforms"] == parsed["predicates"] == []
    assert parsed["key.converter"] is None and parsed["value.converter"] is None and parsed["header.converter"] is None
    assert CONNECTOR_CONFIG.groups() == ["Common", "Transforms", "Predicates", "Error Handling"]
    assert CONNECTOR_CONFIG.keys["tasks.max"].display_name == "Tasks max"
    values = CONNECTOR_CONFIG.validate({"name": "", "tasks.max": "0", "errors.tolerance": "ALL",
                                        "transforms": "a,b,a"})
    assert values["connector.class"].errors == [
        'Missing required configuration "connector.class" which has no default value.']
    assert values["name"].errors == ["Invalid value  for configuration name: String may not be empty"]
    assert values["tasks.max"].errors == ["Invalid value 0 for configuration tasks.max: Value must be at least 1"]
    assert values["errors.tolerance"].errors == [
        "Invalid value ALL for configuration errors.tolerance: String must be one of: none, all"]
    assert values["transforms"].errors == [
        "Invalid value [a, b, a] for configuration transforms: Duplicate alias provided."]


def test_sink_and_source_definitions() -> None:
    sink = SINK_CONNECTOR_CONFIG.parse({"name": "s", "connector.class": "X", "topics": "a, b"})
    assert sink["topics"] == ["a", "b"] and sink["topics.regex"] == ""
    assert sink["errors.deadletterqueue.topic.name"] == "" and sink["errors.deadletterqueue.topic.replication.factor"] == 3
    assert sink["errors.deadletterqueue.context.headers.enable"] is False
    assert SINK_CONNECTOR_CONFIG.names()[:len(CONNECTOR_CONFIG.names())] == CONNECTOR_CONFIG.names()
    assert SINK_CONNECTOR_CONFIG.validate({"topics.regex": "a("})["topics.regex"].errors[0].startswith(
        "Invalid value a( for configuration topics.regex: Invalid regex: ")
    source = SOURCE_CONNECTOR_CONFIG.parse({"name": "s", "connector.class": "X"})
    assert source["topic.creation.groups"] == [] and source["exactly.once.support"] == "requested"
    assert source["transaction.boundary"] == "poll" and "topics" not in source
    infos = SINK_CONNECTOR_CONFIG.validate_response("X", {"name": "s", "connector.class": "X", "topics": "t"})
    assert infos["error_count"] == 0 and infos["groups"] == ["Common", "Transforms", "Predicates", "Error Handling"]
    assert {c["definition"]["name"]: c["definition"]["type"] for c in infos["configs"]}["connector.class"] == "STRING"


@pytest.mark.parametrize(
    ("props", "errors"),
    [
        ({"topics": "a"}, []),
        ({"topics.regex": "a.*"}, []),
        ({}, ["Must configure one of topics or topics.regex"]),
        ({"topics": " ", "topics.regex": ""}, ["Must configure one of topics or topics.regex"]),
        ({"topics": "a", "topics.regex": "b.*"}, ["topics and topics.regex are mutually exclusive options, but both are set."]),
        ({"topics": "a, dlq", "errors.deadletterqueue.topic.name": " dlq "},
         ["The DLQ topic 'dlq' may not be included in the list of topics ('topics=[a, dlq]') consumed by the connector"]),
        ({"topics.regex": "d.*", "errors.deadletterqueue.topic.name": "dlq"},
         ["The DLQ topic 'dlq' may not be matched by the regex for the topics ('topics.regex=d.*') consumed by the connector"]),
        ({"topics.regex": "d", "errors.deadletterqueue.topic.name": "dlq"}, []),
        ({"topics.regex": "(", "errors.deadletterqueue.topic.name": "dlq"}, []),
        ({"topics": "a", "errors.deadletterqueue.topic.name": "b"}, []),
    ],
)
def test_validate_sink_topics(props: dict[str, str], errors: list[str]) -> None:
    assert validate_sink_topics(props) == errors


def test_validate_source_rejects_dead_letter_queue_keys() -> None:
    assert validate_source({"name": "s", "errors.tolerance": "all"}) == []
    errors = validate_source({"errors.deadletterqueue.topic.name": "dlq",
                              "errors.deadletterqueue.context.headers.enable": "true"})
    assert len(errors) == 2 and all("dead letter queue is for sink connectors only" in e for e in errors)
    assert errors[0].startswith("errors.deadletterqueue.topic.name")
