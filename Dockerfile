# Multi-stage build: compile in the Rust image, run in a small Debian image
# with CA certificates (reqwest uses rustls with the OS trust store).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY fixtures ./fixtures
COPY benches ./benches
RUN cargo build --release --locked --bin claudit

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/claudit --shell /usr/sbin/nologin claudit \
 && mkdir -p /var/lib/claudit /etc/claudit \
 && chown claudit:claudit /var/lib/claudit
COPY --from=build /src/target/release/claudit /usr/local/bin/claudit
USER 10001:10001
# State (the SQLite journal, cursors, dead letters) lives on this volume.
VOLUME ["/var/lib/claudit"]
ENV RUST_LOG=info
# Metrics and health: the config must set [server] listen = "0.0.0.0:9464"
# (the default, 127.0.0.1, is unreachable from outside the container).
EXPOSE 9464
# The image has no curl: claudit checks its own /healthz (exit 0 on HTTP 200).
# healthcheck connects to 127.0.0.1 inside the container, which 0.0.0.0 covers.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/claudit", "healthcheck", "--url", "http://127.0.0.1:9464/healthz", "--timeout", "4s"]
# Mount the configuration at /etc/claudit/claudit.toml; secrets come from
# environment variables (${VAR} in the config) or mounted files (*_file keys).
ENTRYPOINT ["/usr/local/bin/claudit", "--log-format", "json"]
CMD ["run", "--config", "/etc/claudit/claudit.toml"]
