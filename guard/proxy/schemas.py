"""Request and response bodies of the tool proxy's HTTP front door."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ToolOut(BaseModel):
    """A tool the caller may call."""

    name: str
    description: str
    input_schema: dict[str, Any]


class ToolList(BaseModel):
    """``GET /v1/tools``: only the tools the caller may call."""

    tools: list[ToolOut]


class ToolCallRequest(BaseModel):
    """``POST /v1/tools/{name}/call``: the tool's arguments, checked against its input schema."""

    model_config = ConfigDict(extra="forbid")

    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolCallResponse(BaseModel):
    """The tool's answer as the caller's role may see it."""

    tool: str
    content: Any
    request_id: str
