# pgwarden gateway image: `pgwarden serve` with the configuration mounted at
# /etc/pgwarden/pgwarden.yaml. It holds only the gateway; PostgreSQL, the OIDC
# issuer and (optionally) Vault are separate services. In a container set
# `listen:` and `admin.listen:` to 0.0.0.0 addresses, mount the TLS files the
# config names, and give `store.dir` a volume (the default ./data is
# /var/lib/pgwarden/data here).

# Build: cgo is required (pg_query embeds PostgreSQL's parser, in C).
FROM golang:1.26-trixie AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags='-s -w' -o /out/pgwarden ./cmd/pgwarden

# Runtime: the same Debian release as the builder, so the glibc the binary
# was linked against is present.
FROM debian:trixie-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/pgwarden --create-home pgwarden
COPY --from=build /out/pgwarden /usr/local/bin/pgwarden
USER pgwarden
WORKDIR /var/lib/pgwarden
EXPOSE 6432 6480
ENTRYPOINT ["pgwarden", "serve", "--config", "/etc/pgwarden/pgwarden.yaml"]
