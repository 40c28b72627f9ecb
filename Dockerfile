# Build a static binary, then ship it alone on a distroless, non-root base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=${VERSION}" \
      -o /dify_exporter .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /dify_exporter /bin/dify_exporter
USER nonroot:nonroot
EXPOSE 9866
ENTRYPOINT ["/bin/dify_exporter"]
