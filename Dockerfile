# syntax=docker/dockerfile:1
# One image for every subcommand: serve (default), controller, sim, demo, check-config, crd,
# hash-token, openapi.
#   docker build -t ghcr.io/example/inventory-gateway:0.1.0 .
#   docker run --rm ghcr.io/example/inventory-gateway:0.1.0 --help

# ---- build ------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Only what the binary is built from (openapi/ holds the committed examples it embeds).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY openapi ./openapi
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin inventory-gateway \
    && install -D -m 0755 target/release/inventory-gateway /out/inventory-gateway

# ---- run --------------------------------------------------------------------------------
# glibc + libgcc only (TLS is rustls with compiled-in roots; no OpenSSL, no shell).
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="inventory-gateway" \
      org.opencontainers.image.description="Gateway in front of HPE OneView, Cisco UCS Manager and Dell OME, and the BareMetalHostGenerator controller" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/inventory-gateway /usr/local/bin/inventory-gateway
# distroless "nonroot": uid/gid 65532, numeric so that Kubernetes runAsNonRoot can verify it.
USER 65532:65532
# 8080: gateway API, /healthz, /readyz, /metrics. 8081: controller /metrics, /healthz, /readyz.
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/inventory-gateway"]
CMD ["serve", "--config", "/etc/inventory-gateway/config.toml"]
