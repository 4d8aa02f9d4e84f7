"""Status: pure conditions and the status that follows the owned Deployment, pods and Job."""
