# Test-only stand-in for prom/prometheus (no registry is reachable here): Debian's prometheus package, laid out
# like the official image (binary as the entrypoint, config in /etc/prometheus, data in /prometheus, user nobody),
# so the compose service's command and volumes apply unchanged.
FROM local/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir /prometheus && chown nobody:nogroup /prometheus
USER nobody
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
