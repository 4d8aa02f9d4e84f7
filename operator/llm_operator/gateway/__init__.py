"""The gateway sidecar; imports neither kopf nor kubernetes so its image stays small."""
