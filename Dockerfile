# One image for every lab node (broker, routers, peers, outsider). The lab's code is not copied in:
# compose mounts it read-only at /opt/natlab, so a code change needs no rebuild.
#
# BASE_IMAGE is any Debian bookworm image: debian:bookworm-slim where a registry is reachable, or
# the one `python -m lab up` bootstraps with debootstrap and `docker import` where none is.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# Only Debian packages: no pip inside the build (PyPI's TLS is not trusted from in here).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-scapy python3-pyroute2 python3-aioice \
      iproute2 iptables nftables conntrack procps tcpdump \
      coturn stun-client \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONPATH=/opt/natlab PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /opt/natlab
