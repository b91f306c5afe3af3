"""Channel and server options shared by every caudal gRPC endpoint."""

MAX_MESSAGE_BYTES = 128 * 1024 * 1024
"""Above Kafka's fetch.max.bytes (50 MiB) and any sane produce request, so the
broker's own limits (max.message.bytes, fetch sizes) are what users meet, not gRPC's 4 MiB."""

GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.http2.max_pings_without_data", 0),
]
