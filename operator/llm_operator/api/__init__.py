"""The LLMDeployment API (pydantic models); imports neither kopf nor kubernetes."""
