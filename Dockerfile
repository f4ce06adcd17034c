# Multi-stage build: wheels are built in the first stage; the runtime image has no compiler and
# runs as an unprivileged user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protos ./protos
COPY generated ./generated
COPY ledger_server ./ledger_server
COPY clients ./clients
COPY chain ./chain
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 ledger
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER ledger
WORKDIR /home/ledger
ENV LEDGER_LISTEN=0.0.0.0:50051 \
    LEDGER_METRICS_LISTEN=0.0.0.0:9464 \
    LEDGER_STATE_DIR=/home/ledger/state
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import grpc,sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; sys.exit(g.HealthStub(grpc.insecure_channel('127.0.0.1:50051')).Check(h.HealthCheckRequest(), timeout=2).status != 1)"
ENTRYPOINT ["ledger-server"]
