"""The gateway's model APIs, one module per family: `openai` (/v1), `responses` (OpenAI's /v1/responses),
`messages` (Anthropic's /v1/messages), `ollama` (+ `ollama_legacy`: /api), `manage` (Ollama's pull, push,
copy, delete) and `create` (Ollama's create and blob upload).

Each module has an `APIRouter` named `router` that `server.app.create_app` includes; routes reach the
shared `Gateway` through the request (`server.gateway.gateway_of`).
"""
