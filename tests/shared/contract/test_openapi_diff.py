"""Breaking-change detection between two OpenAPI documents, on documents FastAPI generates."""

from typing import Annotated, Any

from fastapi import FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from vigie.contract.openapi_diff import breaking_changes


class Out(BaseModel):
    id: int
    name: str
    score: float | None = None


class OutNarrowed(BaseModel):
    id: int
    name: str
    score: float  # no longer nullable


class OutFewer(BaseModel):
    id: int


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=10)


class InStricter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=32)
    tags: list[str] = Field(default_factory=list, max_length=10)
    owner: str  # new required field


class InWithout(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64)


def spec(out: type[BaseModel] = Out, body: type[BaseModel] = In, *, limit_max: int = 100,
         extra_route: bool = False, drop_route: bool = False) -> dict[str, Any]:  # fmt: skip
    app = FastAPI()

    async def read(limit: Annotated[int, Query(ge=1, le=limit_max)] = 10) -> Any:
        return None

    async def create(payload: Any) -> Any:
        return None

    create.__annotations__["payload"] = body
    if not drop_route:
        app.add_api_route("/things", read, methods=["GET"], response_model=out)
    app.add_api_route("/things", create, methods=["POST"], response_model=out)
    if extra_route:
        app.add_api_route("/other", read, methods=["GET"], response_model=out)
    return app.openapi()


def test_the_same_document_and_additions_are_compatible() -> None:
    assert breaking_changes(spec(), spec()) == []
    assert breaking_changes(spec(), spec(extra_route=True)) == []
    assert breaking_changes(spec(), spec(limit_max=500)) == []  # a wider range


def test_removed_operations_and_fields_break() -> None:
    assert breaking_changes(spec(), spec(drop_route=True)) == ["GET /things: operation removed"]
    removed = breaking_changes(spec(), spec(out=OutFewer))
    assert any("response field name removed" in p for p in removed), removed
    assert any("response field score removed" in p for p in removed), removed


def test_narrowed_types_and_ranges_break() -> None:
    narrowed = breaking_changes(spec(), spec(out=OutNarrowed))
    assert any("score: type narrowed (no longer null)" in p for p in narrowed), narrowed
    lowered = breaking_changes(spec(), spec(limit_max=50))
    assert lowered == ["GET /things parameter limit: maximum lowered to 50"]


def test_stricter_requests_break() -> None:
    stricter = breaking_changes(spec(), spec(body=InStricter))
    assert any("new required field owner" in p for p in stricter), stricter
    assert any("name: maxLength lowered to 32" in p for p in stricter), stricter
    without = breaking_changes(spec(), spec(body=InWithout))
    assert any("field tags no longer accepted" in p for p in without), without
