# syntax=docker/dockerfile:1
# Latch: latchd, the latch CLI and the example certificate service in one
# small image. Build: docker build -t latch .   Run: see docker-compose.yml.

# --- build: Rust and what RocksDB's bindings need (clang, libclang) -------
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The caches keep the registry and RocksDB's C++ build between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p latchd -p latch-cli -p certificate-service \
 && mkdir -p /out \
 && cp target/release/latchd target/release/latch target/release/certificate-service /out/

# --- run: a slim Debian with the three binaries, as an unprivileged user --
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/latch latch \
 && mkdir -p /var/lib/latch \
 && chown latch /var/lib/latch
COPY --from=build /out/ /usr/local/bin/
USER latch
ENV LATCH_DATA_DIR=/var/lib/latch \
    LATCH_LISTEN=0.0.0.0:7420 \
    LATCH_LOG_JSON=true
VOLUME /var/lib/latch
EXPOSE 7420
ENTRYPOINT ["latchd"]
