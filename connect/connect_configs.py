"""The Kafka Connect config definitions users already know: worker, connector, sink and source keys.

Names, types, defaults, groups and display names follow Kafka's
``WorkerConfig``, ``StandaloneConfig``, ``DistributedConfig``,
``ConnectorConfig``, ``SinkConnectorConfig`` and ``SourceConnectorConfig``, so
existing properties files work unchanged and the validate endpoint describes
the keys as Kafka does (``connector.class`` is a STRING, as in Kafka, because it
also takes aliases such as ``FileStreamSink``). Deliberate differences: ``key.converter`` and
``value.converter`` default to Kafka's JsonConverter on the worker (Kafka makes
them required), and ``metrics.port`` is caudal's own key for the worker's
Prometheus endpoint. Docs are shortened from Kafka's.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from caudal.connect.config_def import (
    ConfigDef,
    ConfigException,
    ConfigType,
    Importance,
    NonEmptyStringWithoutControlChars,
    Range,
    Validator,
    ValidString,
    Width,
    format_value,
    parse_value,
)

JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
SIMPLE_HEADER_CONVERTER = "org.apache.kafka.connect.storage.SimpleHeaderConverter"
DLQ_PREFIX = "errors.deadletterqueue."

_MAX_INT = 2**31 - 1


# ---- validators of Connect's own (Kafka's TopicCreationConfig, RegexValidator, aliasValidator) ----

def _broker_default_or_positive(what: str) -> Validator:
    def validate(name: str, value: Any) -> None:
        if value is not None and value != -1 and value < 1:
            raise ConfigException.invalid(name, value, f"{what}, or -1 to use the broker's default")

    return validate


_REPLICATION_FACTOR = _broker_default_or_positive(
    "Replication factor must be positive and not larger than the number of brokers in the Kafka cluster"
)
_PARTITIONS = _broker_default_or_positive("Number of partitions must be positive")


def _unique_aliases(name: str, value: Any) -> None:
    if value is None:
        raise ConfigException.invalid(name, None, "entry must be non null")
    if len(set(value)) < len(value):
        raise ConfigException.invalid(name, value, "Duplicate alias provided.")


def _valid_regex(name: str, value: Any) -> None:
    if value is None:
        return
    try:
        re.compile(value)
    except re.error as exc:
        raise ConfigException.invalid(name, value, f"Invalid regex: {exc}") from None


# ---- workers ----------------------------------------------------------------------------

WORKER_CONFIG = (
    ConfigDef()
    .define("bootstrap.servers", ConfigType.LIST, "localhost:9092", importance=Importance.HIGH,
            documentation="A list of host/port pairs to use for establishing the initial connection to the "
                          "Kafka cluster, in the form host1:port1,host2:port2,...")
    .define("key.converter", ConfigType.CLASS, JSON_CONVERTER, importance=Importance.HIGH,
            documentation="Converter class used to convert between Kafka Connect format and the serialized "
                          "form that is written to Kafka; this controls the format of the keys.")
    .define("value.converter", ConfigType.CLASS, JSON_CONVERTER, importance=Importance.HIGH,
            documentation="Converter class used to convert between Kafka Connect format and the serialized "
                          "form that is written to Kafka; this controls the format of the values.")
    .define("header.converter", ConfigType.CLASS, SIMPLE_HEADER_CONVERTER, importance=Importance.LOW,
            documentation="HeaderConverter class used to convert header values; by default the "
                          "SimpleHeaderConverter serializes them to strings and infers their schemas.")
    .define("task.shutdown.graceful.timeout.ms", ConfigType.LONG, 5000, importance=Importance.LOW,
            documentation="Amount of time to wait for tasks to shutdown gracefully. This is the total amount "
                          "of time, not per task.")
    .define("offset.flush.interval.ms", ConfigType.LONG, 60000, importance=Importance.LOW,
            documentation="Interval at which to try committing offsets for tasks.")
    .define("offset.flush.timeout.ms", ConfigType.LONG, 5000, importance=Importance.LOW,
            documentation="Maximum number of milliseconds to wait for records to flush and partition offset "
                          "data to be committed to offset storage before cancelling the process.")
    .define("listeners", ConfigType.LIST, "http://:8083", importance=Importance.LOW,
            documentation="List of comma-separated URIs the REST API will listen on. Leave hostname empty "
                          "to bind to the default interface, e.g. HTTP://myhost:8083,HTTPS://myhost:8084")
    .define("rest.advertised.host.name", ConfigType.STRING, None, importance=Importance.LOW,
            documentation="If this is set, this is the hostname that will be given out to other workers "
                          "to connect to.")
    .define("rest.advertised.port", ConfigType.INT, None, importance=Importance.LOW,
            documentation="If this is set, this is the port that will be given out to other workers "
                          "to connect to.")
    .define("plugin.path", ConfigType.LIST, "", importance=Importance.LOW,
            documentation="List of paths separated by commas (,) that contain plugins (connectors, "
                          "converters, transformations).")
    .define("client.id", ConfigType.STRING, "", importance=Importance.LOW,
            documentation="An id string to pass to the server when making requests, to track the source "
                          "of requests in server-side request logging.")
    .define("metrics.port", ConfigType.INT, -1, Range.between(-1, 65535), importance=Importance.LOW,
            documentation="caudal addition, not a Kafka key: the port of the worker's Prometheus metrics "
                          "endpoint; -1 (the default) turns it off.")
)

STANDALONE_CONFIG = WORKER_CONFIG.merge(
    ConfigDef().define("offset.storage.file.filename", ConfigType.STRING, importance=Importance.HIGH,
                       documentation="File to store offset data in")
)


def _distributed_only() -> ConfigDef:
    definition = (
        ConfigDef()
        .define("group.id", ConfigType.STRING, importance=Importance.HIGH,
                documentation="A unique string that identifies the Connect cluster group this worker belongs to.")
        .define("session.timeout.ms", ConfigType.INT, 10000, importance=Importance.HIGH,
                documentation="The timeout used to detect worker failures: a worker whose heartbeats stop for "
                              "this long is removed from the group and a rebalance starts.")
        .define("rebalance.timeout.ms", ConfigType.INT, 60000, importance=Importance.HIGH,
                documentation="The maximum allowed time for each worker to join the group once a rebalance "
                              "has begun.")
        .define("heartbeat.interval.ms", ConfigType.INT, 3000, importance=Importance.HIGH,
                documentation="The expected time between heartbeats to the group coordinator; lower than "
                              "session.timeout.ms, typically no higher than 1/3 of it.")
    )
    storage = (
        ("offset", "connector offsets are stored", "offset storage", 25),
        ("config", "connector configurations are stored", "configuration storage", None),
        ("status", "connector and task status are stored", "status storage", 5),
    )
    for prefix, stored, topic, partitions in storage:
        definition.define(f"{prefix}.storage.topic", ConfigType.STRING, importance=Importance.HIGH,
                          documentation=f"The name of the Kafka topic where {stored}")
        if partitions is not None:
            definition.define(f"{prefix}.storage.partitions", ConfigType.INT, partitions, _PARTITIONS,
                              importance=Importance.LOW,
                              documentation=f"The number of partitions used when creating the {topic} topic")
        definition.define(f"{prefix}.storage.replication.factor", ConfigType.SHORT, 3, _REPLICATION_FACTOR,
                          importance=Importance.LOW,
                          documentation=f"Replication factor used when creating the {topic} topic")
    return (
        definition
        .define("connect.protocol", ConfigType.STRING, "sessioned",
                ValidString.in_ignore_case("eager", "compatible", "sessioned"), importance=Importance.LOW,
                documentation="Compatibility mode for Kafka Connect Protocol")
        .define("scheduled.rebalance.max.delay.ms", ConfigType.INT, 0, Range.between(0, _MAX_INT),
                importance=Importance.LOW,
                documentation="The maximum delay that is scheduled in order to wait for the return of one or "
                              "more departed workers before rebalancing and reassigning their connectors and tasks. "
                              "caudal's default is 0: a dead worker's work moves as soon as its session expires "
                              "(Kafka waits 300000 ms by default, which suits rolling restarts).")
    )


DISTRIBUTED_CONFIG = WORKER_CONFIG.merge(_distributed_only())


# ---- connectors -------------------------------------------------------------------------

COMMON_GROUP = "Common"
TRANSFORMS_GROUP = "Transforms"
PREDICATES_GROUP = "Predicates"
ERROR_GROUP = "Error Handling"

CONNECTOR_CONFIG = (
    ConfigDef()
    .define("name", ConfigType.STRING, validator=NonEmptyStringWithoutControlChars(), importance=Importance.HIGH,
            documentation="Globally unique name to use for this connector.",
            group=COMMON_GROUP, order_in_group=1, width=Width.MEDIUM, display_name="Connector name")
    .define("connector.class", ConfigType.STRING, importance=Importance.HIGH,
            documentation="Name or alias of the class for this connector, e.g. "
                          "org.apache.kafka.connect.file.FileStreamSinkConnector or FileStreamSink.",
            group=COMMON_GROUP, order_in_group=2, width=Width.LONG, display_name="Connector class")
    .define("tasks.max", ConfigType.INT, 1, Range.at_least(1), Importance.HIGH,
            "Maximum number of tasks to use for this connector.",
            COMMON_GROUP, 3, width=Width.SHORT, display_name="Tasks max")
    .define("key.converter", ConfigType.CLASS, None, importance=Importance.LOW,
            documentation="Converter class for the keys of this connector's records; by default the "
                          "worker's key.converter.",
            group=COMMON_GROUP, order_in_group=4, width=Width.SHORT, display_name="Key converter class")
    .define("value.converter", ConfigType.CLASS, None, importance=Importance.LOW,
            documentation="Converter class for the values of this connector's records; by default the "
                          "worker's value.converter.",
            group=COMMON_GROUP, order_in_group=5, width=Width.SHORT, display_name="Value converter class")
    .define("header.converter", ConfigType.CLASS, None, importance=Importance.LOW,
            documentation="HeaderConverter class for this connector's record headers; by default the "
                          "worker's header.converter.",
            group=COMMON_GROUP, order_in_group=6, width=Width.SHORT, display_name="Header converter class")
    .define("transforms", ConfigType.LIST, "", _unique_aliases, Importance.LOW,
            "Aliases for the transformations to be applied to records.",
            TRANSFORMS_GROUP, 7, width=Width.LONG, display_name="Transforms")
    .define("predicates", ConfigType.LIST, "", _unique_aliases, Importance.LOW,
            "Aliases for the predicates used by transformations.",
            PREDICATES_GROUP, 8, width=Width.LONG, display_name="Predicates")
    .define("config.action.reload", ConfigType.STRING, "restart", ValidString.in_("none", "restart"),
            Importance.LOW,
            "The action that Connect should take on the connector when changes in external configuration "
            "providers result in a change in the connector's configuration properties: 'none' or 'restart'.",
            COMMON_GROUP, 9, width=Width.MEDIUM, display_name="Reload Action")
    .define("errors.retry.timeout", ConfigType.LONG, 0, importance=Importance.MEDIUM,
            documentation="The maximum duration in milliseconds that a failed operation will be reattempted. "
                          "The default is 0, which means no retries will be attempted. Use -1 for infinite retries.",
            group=ERROR_GROUP, order_in_group=1, width=Width.MEDIUM, display_name="Retry Timeout for Errors")
    .define("errors.retry.delay.max.ms", ConfigType.LONG, 60000, importance=Importance.MEDIUM,
            documentation="The maximum duration in milliseconds between consecutive retry attempts.",
            group=ERROR_GROUP, order_in_group=2, width=Width.MEDIUM,
            display_name="Maximum Delay Between Retries for Errors")
    .define("errors.tolerance", ConfigType.STRING, "none", ValidString.in_("none", "all"), Importance.MEDIUM,
            "Behavior for tolerating errors during connector operation. 'none' is the default value and signals "
            "that any error will result in an immediate connector task failure; 'all' changes the behavior to "
            "skip over problematic records.",
            ERROR_GROUP, 3, width=Width.SHORT, display_name="Error Tolerance")
    .define("errors.log.enable", ConfigType.BOOLEAN, False, importance=Importance.MEDIUM,
            documentation="If true, write each error and the details of the failed operation and problematic "
                          "record to the Connect application log.",
            group=ERROR_GROUP, order_in_group=4, width=Width.SHORT, display_name="Log Errors")
    .define("errors.log.include.messages", ConfigType.BOOLEAN, False, importance=Importance.MEDIUM,
            documentation="Whether to include in the log the Connect record that resulted in a failure.",
            group=ERROR_GROUP, order_in_group=5, width=Width.SHORT, display_name="Log Error Details")
)

SINK_CONNECTOR_CONFIG = CONNECTOR_CONFIG.merge(
    ConfigDef()
    .define("topics", ConfigType.LIST, "", importance=Importance.HIGH,
            documentation="List of topics to consume, separated by commas",
            group=COMMON_GROUP, order_in_group=4, width=Width.LONG, display_name="Topics")
    .define("topics.regex", ConfigType.STRING, "", _valid_regex, Importance.HIGH,
            "Regular expression giving topics to consume. Only one of topics or topics.regex should be specified.",
            COMMON_GROUP, 4, width=Width.LONG, display_name="Topics regex")
    .define(DLQ_PREFIX + "topic.name", ConfigType.STRING, "", importance=Importance.MEDIUM,
            documentation="The name of the topic to be used as the dead letter queue (DLQ) for messages that "
                          "result in an error when processed by this sink connector, or its transformations or "
                          "converters. Blank (the default) means no DLQ.",
            group=ERROR_GROUP, order_in_group=6, width=Width.MEDIUM, display_name="Dead Letter Queue Topic Name")
    .define(DLQ_PREFIX + "topic.replication.factor", ConfigType.SHORT, 3, importance=Importance.MEDIUM,
            documentation="Replication factor used to create the dead letter queue topic when it doesn't "
                          "already exist.",
            group=ERROR_GROUP, order_in_group=7, width=Width.MEDIUM,
            display_name="Dead Letter Queue Topic Replication Factor")
    .define(DLQ_PREFIX + "context.headers.enable", ConfigType.BOOLEAN, False, importance=Importance.MEDIUM,
            documentation="If true, add headers containing error context to the messages written to the dead "
                          "letter queue; their keys start with __connect.errors.",
            group=ERROR_GROUP, order_in_group=8, width=Width.MEDIUM, display_name="Enable Error Context Headers")
)

SOURCE_CONNECTOR_CONFIG = CONNECTOR_CONFIG.merge(
    ConfigDef()
    .define("topic.creation.groups", ConfigType.LIST, "", _unique_aliases, Importance.LOW,
            "Groups of configurations for topics created by source connectors",
            "Topic Creation", 1, width=Width.LONG, display_name="Topic Creation Groups")
    .define("exactly.once.support", ConfigType.STRING, "requested",
            ValidString.in_ignore_case("requested", "required"), Importance.MEDIUM,
            "Permitted values are requested, required. If set to \"required\", forces a preflight check for the "
            "connector to ensure that it can provide exactly-once semantics with the given configuration.",
            "Exactly Once Support", 2, width=Width.SHORT, display_name="Exactly once support")
    .define("transaction.boundary", ConfigType.STRING, "poll",
            ValidString.in_ignore_case("poll", "interval", "connector"), Importance.MEDIUM,
            "Permitted values are: poll, interval, connector. 'poll' starts and commits a producer transaction "
            "for every batch of records a task provides; 'connector' relies on connector-defined boundaries; "
            "'interval' commits after a user-defined time interval.",
            "Exactly Once Support", 3, width=Width.SHORT, display_name="Transaction Boundary")
)


# ---- cross-key rules (errors the validate endpoint adds to the per-key ones) ---------------

def _is_blank(value: Any) -> bool:
    return value is None or not str(value).strip()


def validate_sink_topics(props: Mapping[str, str]) -> list[str]:
    """Kafka's sink rules, in its words: exactly one of topics/topics.regex; the DLQ topic not consumed."""
    topics, regex = props.get("topics"), props.get("topics.regex")
    dlq = str(props.get(DLQ_PREFIX + "topic.name", "")).strip()
    errors: list[str] = []
    if not _is_blank(topics) and not _is_blank(regex):
        errors.append("topics and topics.regex are mutually exclusive options, but both are set.")
    if _is_blank(topics) and _is_blank(regex):
        errors.append("Must configure one of topics or topics.regex")
    if dlq and not _is_blank(topics):
        consumed = list(dict.fromkeys(t for t in parse_value("topics", topics, ConfigType.LIST) if t))
        if dlq in consumed:
            errors.append(f"The DLQ topic '{dlq}' may not be included in the list of topics "
                          f"('topics={format_value(consumed)}') consumed by the connector")
    if dlq and not _is_blank(regex):
        try:
            matched = re.fullmatch(str(regex), dlq) is not None
        except re.error:
            matched = False  # topics.regex's own validator reports the bad pattern
        if matched:
            errors.append(f"The DLQ topic '{dlq}' may not be matched by the regex for the topics "
                          f"('topics.regex={regex}') consumed by the connector")
    return errors


def validate_source(props: Mapping[str, str]) -> list[str]:
    """Source connectors have no dead letter queue: any ``errors.deadletterqueue.*`` key is an error."""
    return [
        f"{key} is not allowed for a source connector: the dead letter queue is for sink connectors only"
        for key in props if key.startswith(DLQ_PREFIX)
    ]


def bootstrap_servers(config: Mapping[str, Any]) -> str:
    """``bootstrap.servers`` as the SDK takes it (a parsed worker config holds it as a list)."""
    servers = config.get("bootstrap.servers", "localhost:9092")
    return ",".join(servers) if isinstance(servers, list) else str(servers)
