# Test-only base for deploy/Dockerfile (BASE_IMAGE): the local Debian image (no registry is reachable here)
# plus this machine's CA certificates, without which pip cannot reach PyPI over HTTPS from a container.
# The bundle lives outside /etc/ssl/certs because installing python3 pulls in Debian's ca-certificates, whose
# postinst rewrites /etc/ssl/certs/ca-certificates.crt without this machine's proxy CA.
# python3 is left out on purpose: deploy/Dockerfile installs it with apt when the base lacks it.
# Built by tests/deploy/conftest.py with a context holding only ca-certificates.crt.
FROM local/debian:bookworm
COPY ca-certificates.crt /usr/local/share/distill-test/ca-certificates.crt
ENV PIP_CERT=/usr/local/share/distill-test/ca-certificates.crt \
    SSL_CERT_FILE=/usr/local/share/distill-test/ca-certificates.crt
