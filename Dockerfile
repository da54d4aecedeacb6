# exapp-janitor's container image: one static binary on an empty base, run
# as a user without privileges, its database in the volume /data.
#
#   docker build -t exapp-janitor .
#   docker run ...        (README, "Install": the whole line, and compose.yaml)
#
# The build stage needs the network (the Rust image and the crates); BuildKit
# and the classic builder both build it. The image stage below is what runs:
# tests/packaging.rs builds that stage as it is here, fed with the static
# binary the test suite built, on an isolated engine, and runs it as the
# README says.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# /out holds what the image stage takes: the binary, and the empty data
# dir in a folder of its own (copied as an entry, it keeps its mode 0700).
RUN packaging/build-static.sh \
 && install -D -m 0755 target/x86_64-unknown-linux-gnu/release/exapp-janitor /out/exapp-janitor \
 && install -d -m 0700 /out/state/data

# ---- the image ------------------------------------------------------------
FROM scratch
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/exapp-janitor/exapp-janitor
LABEL org.opencontainers.image.title="exapp-janitor" \
      org.opencontainers.image.description="Removes outdated Nextcloud ExApp images from the Docker daemons AppAPI deploys to" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later"
COPY --from=build /out/exapp-janitor /usr/local/bin/exapp-janitor
# The system's CAs, for a HaRP reached over HTTPS without --tls-ca.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# /data, the user's and 0700: a new named volume takes the owner and mode of
# the image's directory, so the janitor can write its database there.
COPY --from=build --chown=10001:10001 /out/state/ /
# Numeric: the image has no /etc/passwd. Add the Docker socket's group at
# run time (--group-add, group_add): membership of it is root on the host.
USER 10001:10001
# SQLite puts its temporary files in the working directory when it finds
# no /tmp; /data is the one writable place in a --read-only container.
WORKDIR /data
ENV EXAPP_JANITOR_DATA_DIR=/data \
    EXAPP_JANITOR_LISTEN=0.0.0.0:8080
VOLUME /data
EXPOSE 8080
# No shell or curl in the image: the binary asks its own server.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/exapp-janitor", "health"]
ENTRYPOINT ["/usr/local/bin/exapp-janitor"]
CMD ["serve"]
