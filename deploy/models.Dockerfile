# The model repository as an image, for the Kubernetes init container (deploy/k8s/deployment.yaml), which
# copies /repository into the pod's models volume. Build it with the repository folder as the context:
#
#   docker build -f deploy/models.Dockerfile -t distill-serve/models:TAG models/
#
# Tag it with the models' version: rolling out other models is changing that tag. The base only needs `cp`;
# the api image's base keeps it to layers the nodes already hold.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
COPY --chown=10001:10001 . /repository/
USER 10001:10001
CMD ["cp", "-R", "/repository/.", "/models/"]
