"""Reports: Markdown, JSON and PNG plots, each a pure function of recorded results.

Plots are drawn off screen: the backend is chosen here, once, before any report module imports pyplot.
"""

import matplotlib

matplotlib.use("Agg")
