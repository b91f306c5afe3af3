# caudal container image: `caudal controller`, `caudal broker`, `caudal dev` and the
# client commands, installed from this repository.
#
#   docker build -t caudal:0.1.0 .
#   docker run --rm caudal:0.1.0 --help
#   docker run --rm --network host caudal:0.1.0 dev --data-dir /var/lib/caudal/data
#     (a broker advertises the host it listens on, so publish it on an address
#      clients can reach; host networking keeps 127.0.0.1:9092 valid)
#
# Two stages: the build stage installs the package and its dependencies into a
# virtualenv (every dependency ships manylinux wheels for amd64 and arm64; the C
# compiler is for caudal's own compiled record decoder, which consumers use when
# it is built); the runtime stage copies just that virtualenv, so nothing used to
# build — the compiler, pip, setuptools, the source tree — ends up in the image.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install --yes --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && python -m venv /opt/caudal
WORKDIR /src
# What is copied is decided by .dockerignore (tests, k8s/, VCS and caches stay out).
COPY . .
RUN /opt/caudal/bin/pip install . \
 && /opt/caudal/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="caudal" \
      org.opencontainers.image.description="A distributed event-streaming platform: Kafka's model on gRPC, RocksDB and Raft" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/caudal/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it and
# fsGroup can hand it the data volume.
RUN groupadd --system --gid 10001 caudal \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/caudal --create-home \
            --shell /usr/sbin/nologin caudal
COPY --from=build /opt/caudal /opt/caudal
USER 10001:10001
WORKDIR /var/lib/caudal
# broker clients, controller API, controller Raft, Prometheus metrics (see k8s/)
EXPOSE 9092 9093 9094 9404
# SIGTERM (docker stop, Kubernetes) starts a controlled shutdown.
STOPSIGNAL SIGTERM
ENTRYPOINT ["caudal"]
CMD ["--help"]
