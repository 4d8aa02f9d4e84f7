"""A real local Kubernetes control plane with simulated GPU nodes.

etcd, kube-apiserver (RBAC, service-account signing keys, client-certificate auth),
kube-controller-manager (ReplicaSets, garbage collection, service-account tokens),
kube-scheduler and kwok (nodes with ``nvidia.com/gpu`` capacity whose pods turn Ready after a
start delay that stands for the model's cold start). The binaries come from
``hack/install-tools.sh``. Used by the pytest fixture ``cluster``, by ``make cluster-up`` and by
the demo. Every process is started here, tracked by PID and stopped here.

The package face only re-exports: ``binaries`` (where the tools are, their versions), ``pki``
(certificates), ``processes`` (supervision, ports, the state file), ``nodes`` (simulated GPU
nodes) and ``cluster`` (``LocalCluster``).
"""

from llm_operator.lab.localcluster.binaries import (
    BINARIES as BINARIES,
)
from llm_operator.lab.localcluster.binaries import (
    REPO_ROOT as REPO_ROOT,
)
from llm_operator.lab.localcluster.binaries import (
    find_bin_dir as find_bin_dir,
)
from llm_operator.lab.localcluster.binaries import (
    pinned_versions as pinned_versions,
)
from llm_operator.lab.localcluster.cluster import LocalCluster as LocalCluster
from llm_operator.lab.localcluster.nodes import (
    KWOK_NODE_LABEL as KWOK_NODE_LABEL,
)
from llm_operator.lab.localcluster.nodes import (
    KWOK_NODE_VALUE as KWOK_NODE_VALUE,
)
from llm_operator.lab.localcluster.pki import PKI as PKI
from llm_operator.lab.localcluster.processes import ClusterError as ClusterError
from llm_operator.lab.localcluster.processes import Component as Component
from llm_operator.lab.localcluster.processes import _alive as _alive  # the e2e test checks PIDs
from llm_operator.lab.localcluster.processes import free_port as free_port
from llm_operator.lab.localcluster.processes import stop_from_state as stop_from_state
