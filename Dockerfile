# roomcast: multi-stage build. Dependencies are compiled in their own layer,
# so a source change rebuilds only the crate itself.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /app
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home roomcast
WORKDIR /app
COPY --from=build /app/target/release/roomcast /usr/local/bin/roomcast
COPY config ./config
ENV ROOMCAST_ENV=production
EXPOSE 8080
USER 10001
ENTRYPOINT ["/usr/local/bin/roomcast"]
