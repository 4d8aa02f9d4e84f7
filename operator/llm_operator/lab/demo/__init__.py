"""``llm-lab demo``: the operator on a local control plane with simulated GPU nodes.

``run.py`` orchestrates (cluster, chart, operator, samples, teardown), ``phases.py`` narrates
each phase as the commands a user would type, ``lab/views.py`` (shared with the
replay) reads what kubectl shows.
"""

from llm_operator.lab.demo.run import DemoResult as DemoResult
from llm_operator.lab.demo.run import run_demo as run_demo
