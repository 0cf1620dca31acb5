"""HTTP routes: read and parse the request's fields, call the data plane, nothing more. Their dependencies are in
`deps.py`; a route never imports a sibling route."""
