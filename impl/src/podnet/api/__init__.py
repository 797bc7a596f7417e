"""The agent's REST API: pydantic models, the OpenAPI document, a client."""
