# pgwarden gateway image: `pgwarden serve` with the configuration mounted at
# /etc/pgwarden/pgwarden.yaml. It holds only the gateway; PostgreSQL, the OIDC
# issuer and (optionally) Vault are separate services. In a container set
# `listen:` and `admin.listen:` to 0.0.0.0 addresses, mount the TLS files the
# config names, and give `store.dir` a volume (the default ./data is
# /var/lib/pgwarden/data here, owned by the image's user 10001). The Helm
# chart (deploy/helm/pgwarden) and the Compose quick-start (deploy/compose)
# run this image; docs/deploy.md describes both.
#
#   docker build -t pgwarden:0.1.0 --build-arg VERSION=0.1.0 .
#
# The entrypoint is the binary, so other commands run the same image:
#   docker run --rm -v ./pgwarden.yaml:/etc/pgwarden/pgwarden.yaml:ro pgwarden:0.1.0 \
#     store migrate --config /etc/pgwarden/pgwarden.yaml
#
# Building without the internet:
#   - Go modules, either vendored (the build then downloads nothing):
#       go mod vendor
#       docker build --build-arg GOFLAGS=-mod=vendor -t pgwarden:0.1.0 .
#     or from a module proxy inside your network (GOPROXY=off needs every
#     module already in the builder image's module cache):
#       docker build --build-arg GOPROXY=https://goproxy.internal.example -t pgwarden:0.1.0 .
#   - Base images from a registry mirror:
#       docker build --build-arg GO_IMAGE=registry.internal.example/golang:1.26-trixie \
#         --build-arg RUNTIME_IMAGE=registry.internal.example/debian:trixie-slim ...
#   - The runtime stage installs no packages (the CA bundle comes from the
#     builder image), so it needs no Debian mirror.

ARG GO_IMAGE=golang:1.26-trixie
ARG RUNTIME_IMAGE=debian:trixie-slim

# Build: cgo is required (pg_query embeds PostgreSQL's parser, in C).
FROM ${GO_IMAGE} AS build
ARG GOFLAGS=""
ARG GOPROXY=""
ARG VERSION=dev
ENV GOFLAGS=${GOFLAGS}
WORKDIR /src
COPY go.mod go.sum ./
# The module download gets its own layer (rebuilt only when go.mod/go.sum
# change); a vendored build skips it. An empty GOPROXY is Go's default.
RUN case " ${GOFLAGS} " in *" -mod=vendor "*) ;; *) go mod download ;; esac
COPY . .
RUN CGO_ENABLED=1 go build -trimpath \
      -ldflags="-s -w -X main.version=${VERSION}" -o /out/pgwarden ./cmd/pgwarden

# Runtime: the same Debian release as the builder, so the glibc the binary
# was linked against is present.
FROM ${RUNTIME_IMAGE}
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/pgwarden --create-home pgwarden \
 && install -d -o pgwarden -g pgwarden -m 0750 /var/lib/pgwarden/data \
 && install -d -m 0755 /etc/pgwarden
COPY --from=build /out/pgwarden /usr/local/bin/pgwarden
USER 10001:10001
WORKDIR /var/lib/pgwarden
EXPOSE 6432 6480
ENTRYPOINT ["pgwarden"]
CMD ["serve", "--config", "/etc/pgwarden/pgwarden.yaml"]
