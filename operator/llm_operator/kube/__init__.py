"""The Kubernetes edge: the API client, the typed states it parses, Events."""
