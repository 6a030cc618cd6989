# syntax=docker/dockerfile:1
# The origin image: oxvault-origin with SoftHSM2 as its PKCS#11 token. The edge is a Cloudflare
# Worker and not part of it (see README.md). Build: docker build -t oxvault-origin .

FROM rust:1-bookworm AS builder
WORKDIR /src
# sqlx's query! macros read the committed .sqlx/ instead of asking a live database.
ENV SQLX_OFFLINE=true
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p oxvault-origin \
    && install -m 0755 target/release/oxvault-origin /usr/local/bin/oxvault-origin

FROM debian:bookworm-slim
# Not pinned: bookworm's point releases replace package versions, and pins would then fail.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends softhsm2 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# The token directory is a volume; created here and owned by the service user, a new named
# volume starts with that ownership.
RUN groupadd --system --gid 10001 oxvault \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/oxvault --shell /usr/sbin/nologin oxvault \
    && mkdir -p /etc/oxvault /var/lib/oxvault/tokens \
    && printf 'directories.tokendir = /var/lib/oxvault/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
        >/etc/oxvault/softhsm2.conf \
    && chown -R oxvault:oxvault /var/lib/oxvault \
    && chmod 700 /var/lib/oxvault/tokens
COPY --from=builder /usr/local/bin/oxvault-origin /usr/local/bin/oxvault-origin
COPY docker/entrypoint.sh /usr/local/bin/oxvault-entrypoint
ENV SOFTHSM2_CONF=/etc/oxvault/softhsm2.conf \
    OXVAULT_HSM_MODULE=/usr/lib/softhsm/libsofthsm2.so \
    OXVAULT_LISTEN_ADDR=0.0.0.0:8080 \
    OXVAULT_METRICS_ADDR=0.0.0.0:9464
USER 10001:10001
VOLUME /var/lib/oxvault/tokens
EXPOSE 8080 9464
ENTRYPOINT ["oxvault-entrypoint"]
CMD ["serve"]
