# Skiff node image. No registry is reachable from the build machines, so the
# image starts FROM scratch and holds nothing but the static binary built on
# the host:
#
#   CGO_ENABLED=0 go build -o bin/skiff ./cmd/skiff   (make build)
#   docker build -t skiff:dev .                         (make image)
#
# No CA certificates, shell or libc: faults are injected from the host
# (scripts/faults.sh), never from inside a container. The image holds no
# certificates either: a secure node gets its own, the cluster CA and the
# gossip key from a mount (docker-compose.secure.yml mounts them at /certs)
# named by SKIFF_TLS_CERT_FILE, SKIFF_TLS_KEY_FILE, SKIFF_TLS_CA_FILE and
# SKIFF_GOSSIP_KEY_FILE. Without them a node is plaintext on every port.
FROM scratch

COPY bin/skiff /skiff

# Every flag of `skiff server` can be set as SKIFF_<FLAG>; compose sets the
# per-node ones (id, advertise host, join list).
ENV SKIFF_DATA_DIR=/var/lib/skiff
VOLUME ["/var/lib/skiff"]

# gRPC (clients; the compose cluster's internal listener), Raft (all
# partitions share it), gossip (TCP and UDP), HTTP (/metrics, /healthz,
# /readyz, /v1/cluster), and gRPC's external listener in the compose cluster.
EXPOSE 9400/tcp 9401/tcp 9402/tcp 9402/udp 9403/tcp 9404/tcp

# The healthcheck dials 127.0.0.1 with SKIFF_TLS_* when they are set (the
# node's own certificate carries 127.0.0.1), so it passes in both modes.
# Exec form: the binary is PID 1 and gets SIGTERM directly from `docker stop`,
# so a stopping node hands its leaderships away first.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=2s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/skiff", "health", "--addr", "127.0.0.1:9400"]

ENTRYPOINT ["/skiff"]
CMD ["server"]
