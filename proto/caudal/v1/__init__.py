"""Generated protobuf and gRPC code for the caudal.v1 wire schema (see proto/regen.sh)."""
