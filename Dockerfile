# ticketflow image: one binary, every role (the Helm chart picks the subcommand).
# Build stage: Debian 12 with the toolchain and -dev packages only, installed by
# scripts/bootstrap --build-only (the list a developer machine gets, less the test and run tools).
FROM debian:12 AS build
WORKDIR /src
COPY scripts/bootstrap scripts/bootstrap
RUN scripts/bootstrap --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DTICKETFLOW_BUILD_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target ticketflow \
 && strip /build/ticketflow

# Runtime stage: only the shared libraries the binary links (README "Container image" lists them;
# tests/integration/image_test.cpp checks the list against ldd), CA certificates for TLS, and
# redis-server (6.1 MB installed with redis-tools, liblzf1 and libatomic1) so that `docker run --rm IMAGE demo` runs the
# demo's private Redis as it does on a laptop; the roles never start it.
FROM debian:12-slim
# The version is the CMake project's and the chart's appVersion (tests/integration/image_test.cpp).
LABEL org.opencontainers.image.title="ticketflow" \
      org.opencontainers.image.description="Triage IT-helpdesk tickets with language models on Kafka and Redis" \
      org.opencontainers.image.version="0.1.0"
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
      redis-server librdkafka1 libhiredis0.14 libyaml-cpp0.7 libpoconet80 libpoconetssl80 libpocofoundation80 libssl3 libjemalloc2 libsimdjson14 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin ticketflow
COPY --from=build /build/ticketflow /usr/local/bin/ticketflow
COPY config/ /etc/ticketflow/
COPY schemas/ /usr/share/ticketflow/schemas/
ENV TICKETFLOW_CONFIG_DIR=/etc/ticketflow
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/ticketflow"]
CMD ["--help"]
