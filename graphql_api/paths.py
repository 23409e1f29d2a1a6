"""The service's URL paths (API.md), named once."""

GRAPHQL_PATH = "/graphql"
HEALTH_PATH, READY_PATH, METRICS_PATH = "/health", "/ready", "/metrics"
PROBE_PATHS = (HEALTH_PATH, READY_PATH, METRICS_PATH)
REST_PREFIX = "/hitl"
CONSOLE_PATH = "/console"
CONSOLE_ASSETS_PATH = "/console/assets"
