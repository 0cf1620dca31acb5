"""HTTP routes: translate HTTP to data-plane calls, nothing more."""
