"""The model catalog (API.md section 5)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from imagehub.api.deps import hub, principal
from imagehub.catalog.catalog import ModelEntry
from imagehub.errors import InvalidParams
from imagehub.protocol import Capabilities, Developer, ModelList, ModelObject
from imagehub.services.hub import Hub
from imagehub.services.keys import Principal

router = APIRouter(prefix="/api/ai", tags=["models"], dependencies=[Depends(principal)])
MODALITIES = ("text-to-image", "image-to-image")


def model_object(entry: ModelEntry) -> ModelObject:
    card = entry.card
    return ModelObject(
        id=card.id, created=card.created, display_name=card.display_name,
        description=card.description,
        capabilities=Capabilities(input=card.inputs if "input_image" not in entry.schema.properties
                                  else sorted(set(card.inputs) | {"image"}, reverse=True),
                                  output=["image"]),
        developer=Developer(name=card.developer), request_schema=entry.schema.document,
        json_request_schema=entry.schema.document, available=entry.available,
        unavailable_reason=entry.unavailable_reason, backend=card.backend,
    )


def _modalities(entry: ModelEntry) -> set[str]:
    image_in = "input_image" in entry.schema.properties
    return {"text-to-image", "image-to-image"} if image_in else {"text-to-image"}


@router.get("/models", response_model=ModelList)
@router.head("/models", response_model=ModelList, include_in_schema=False)
def list_models(modalities: str | None = None, h: Hub = Depends(hub)) -> ModelList:
    if modalities is not None and modalities not in MODALITIES:
        raise InvalidParams(f"modalities: {modalities!r} is not one of {list(MODALITIES)}")
    entries = [e for e in h.deps.catalog.all() if modalities is None or modalities in _modalities(e)]
    return ModelList(data=[model_object(e) for e in entries])


@router.get("/models/{model_id}", response_model=ModelObject)
@router.head("/models/{model_id}", response_model=ModelObject, include_in_schema=False)
def get_model(model_id: str, h: Hub = Depends(hub)) -> ModelObject:
    return model_object(h.deps.catalog.get(model_id))
