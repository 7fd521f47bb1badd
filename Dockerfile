# A static, non-root image of edgegate: the binary of
# scripts/build-static.sh (CGO_ENABLED=0, -trimpath; its build is tested by
# TestStaticBuild in make test) on distroless/static, as user 65532.
#   docker build -t edgegate:0.1.0 --build-arg VERSION=0.1.0 .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN scripts/build-static.sh /out/edgegate "$VERSION"

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/edgegate /usr/local/bin/edgegate
USER 65532:65532
# 8443: the listener of deploy/'s config; 9901: the admin server.
EXPOSE 8443 9901
ENTRYPOINT ["/usr/local/bin/edgegate"]
CMD ["serve", "-c", "/etc/edgegate/config/edgegate.yaml"]
