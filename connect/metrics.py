"""Connect worker metrics, read from the worker's connectors and tasks when Prometheus scrapes.

Named after Kafka Connect's (connector-status, task status, source-record-poll,
sink-record-send, total-record-errors, deadletterqueue-produce-requests); the
state gauges are 1 for the current state, so a dashboard can count FAILED
tasks with ``sum(caudal_connect_task_status{state="FAILED"})``.
"""

from __future__ import annotations

from typing import Iterator

from caudal.connect.herder import State
from caudal.connect.worker import Worker
from caudal.connect.worker_task import WorkerSinkTask
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

STATES = [s.value for s in State]


class WorkerCollector(Collector):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        connector_state = GaugeMetricFamily(
            "caudal_connect_connector_status", "1 for the connector's current state (Kafka connector-status)", labels=["connector", "state"]
        )
        task_state = GaugeMetricFamily(
            "caudal_connect_task_status", "1 for the task's current state (Kafka task status)", labels=["connector", "task", "state"]
        )
        records = CounterMetricFamily(
            "caudal_connect_task_records", "Records a source task had acknowledged or a sink task put (Kafka source-record-write / sink-record-send)",
            labels=["connector", "task", "kind"],
        )
        errors = CounterMetricFamily("caudal_connect_task_record_errors", "Records that failed a stage (Kafka total-record-errors)", labels=["connector", "task"])
        skipped = CounterMetricFamily("caudal_connect_task_records_skipped", "Failed records skipped under errors.tolerance=all (Kafka total-records-skipped)", labels=["connector", "task"])
        dlq = CounterMetricFamily("caudal_connect_task_dlq_records", "Records written to the dead letter queue (Kafka deadletterqueue-produce-requests)", labels=["connector", "task"])
        for name in list(self.worker.connectors):
            status = self.worker.connectors.get(name)
            if status is None:
                continue
            for state in STATES:
                connector_state.add_metric([name, state], 1 if status.state.value == state else 0)
        for (name, task_id), task in list(self.worker.tasks.items()):
            key = [name, str(task_id)]
            current = task.status(self.worker.worker_id)["state"]
            for state in STATES:
                task_state.add_metric([*key, state], 1 if current == state else 0)
            records.add_metric([*key, "sink" if isinstance(task, WorkerSinkTask) else "source"], task.records)
            errors.add_metric(key, task.errors.errors)
            skipped.add_metric(key, task.errors.skipped)
            dlq.add_metric(key, task.errors.dlq_records)
        yield from (connector_state, task_state, records, errors, skipped, dlq)


def register_worker_metrics(herder: object) -> WorkerCollector:
    collector = WorkerCollector(herder.worker)  # type: ignore[attr-defined]
    REGISTRY.register(collector)
    return collector
