# roomcast: multi-stage build.
#   chef     the pinned Rust toolchain plus cargo-chef
#   planner  reduces Cargo.toml and Cargo.lock to a dependency recipe
#   builder  compiles the dependencies from the recipe (a layer that stays
#            cached until Cargo.toml or Cargo.lock change), then the crate
#   runtime  Debian slim holding only the binary and config/, as a non-root user
#
# Build: docker build -t roomcast .   Run: see docs/operations.md.
# Bases are pinned to exact releases; pin them by digest as well in your own
# registry mirror (see docs/operations.md, "Running with Docker").

FROM rust:1.95.0-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin roomcast
COPY . .
RUN cargo build --release --locked --bin roomcast

# bookworm, like the builder, so the binary finds the glibc it was linked
# against. Debian slim rather than distroless: the Kubernetes preStop hook runs
# `sleep`, which distroless images lack. No ca-certificates: the MongoDB driver
# uses rustls with the bundled webpki roots.
FROM debian:12.14-slim AS runtime
RUN groupadd --system --gid 10001 roomcast \
 && useradd --system --uid 10001 --gid roomcast --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin roomcast
WORKDIR /app
COPY --from=builder /app/target/release/roomcast /usr/local/bin/roomcast
COPY config ./config
ENV ROOMCAST_ENV=production
EXPOSE 8080
# Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/roomcast"]
