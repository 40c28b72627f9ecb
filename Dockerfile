# Build a static binary, then ship it alone on a distroless, non-root base.
#
#   docker build \
#     --build-arg VERSION="$(cat VERSION)" \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg BRANCH="$(git rev-parse --abbrev-ref HEAD)" \
#     --build-arg BUILD_USER="$(id -un)@$(hostname)" \
#     --build-arg BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
#     -t "REGISTRY/dify_exporter:$(cat VERSION)" .
#
# The values stamp `dify_exporter --version` (prometheus/common/version) and the OCI labels.
# Without VERSION the binary reports the VERSION file's (the OCI label stays empty); .git is
# not in the build context, so REVISION is "unknown" unless given.
ARG VERSION=
ARG REVISION=
ARG BRANCH=
ARG BUILD_USER=docker
ARG BUILD_DATE=

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION
ARG REVISION
ARG BRANCH
ARG BUILD_USER
ARG BUILD_DATE
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w \
        -X github.com/prometheus/common/version.Version=${VERSION} \
        -X github.com/prometheus/common/version.Revision=${REVISION} \
        -X github.com/prometheus/common/version.Branch=${BRANCH} \
        -X github.com/prometheus/common/version.BuildUser=${BUILD_USER} \
        -X github.com/prometheus/common/version.BuildDate=${BUILD_DATE}" \
      -o /dify_exporter . \
 && /dify_exporter --version

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION
ARG REVISION
ARG BUILD_DATE
LABEL org.opencontainers.image.title="dify_exporter" \
      org.opencontainers.image.description="Prometheus exporter for Dify workflow runs" \
      org.opencontainers.image.source="https://github.com/dify-exporter/dify_exporter" \
      org.opencontainers.image.url="https://github.com/dify-exporter/dify_exporter" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${BUILD_DATE}"
COPY --from=build /dify_exporter /bin/dify_exporter
USER nonroot:nonroot
EXPOSE 9866
ENTRYPOINT ["/bin/dify_exporter"]
