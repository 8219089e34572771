"""Benchmarks for Deal Monitor: the product, the seed's approach and the physical limits, side by side.

``python -m bench`` (about 10 minutes) or ``python -m bench --quick`` (about a minute); see
``bench/__main__.py``. The portal simulator and the event sender run in processes of their
own; the app runs in the benchmark process, as it would on its own machine.
"""
