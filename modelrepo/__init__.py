"""The model repository contract, shared by the side that writes it (`distill_training`) and the side that reads
it (`service`, `distill_bench`): the model card schema, the on-disk layout, the tensor datatypes and the default
data set. It imports neither torch nor fastapi, so every package can depend on it and none on another.

Layout (Triton-like)::

    <repo>/<model-name>/config.json           the model card (`modelrepo.card.ModelCard`)
    <repo>/<model-name>/<version>/model.onnx  integer version folders; the service serves the highest
    <repo>/samples/index.json                 real test images and their labels (`modelrepo.samples`)

Cards stay readable across versions in both directions: a reader goes on past fields it does not know, and
methods and architectures are plain names that only the writer checks.
"""
