"""``/v1/silences``: mute matching notifications for a while (they are kept as suppressed)."""

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from vigie.auth.verify import Principal
from vigie.contract.errors import NotFound
from vigie_services.alerting.api.deps import AlertingApi, SilenceId, errors
from vigie_services.alerting.api.responses import SilenceList, SilenceOut
from vigie_services.alerting.api.routing import ResourceRouter
from vigie_services.alerting.models import Silence
from vigie_services.alerting.processing import utcnow
from vigie_services.alerting.schemas import SilenceIn


def router(api: AlertingApi) -> APIRouter:
    r = ResourceRouter(prefix="/v1/silences", tags=["silences"])
    read = Depends(api.auth.requires("alerts:read"))
    ack_scope = Depends(api.auth.requires("alerts:ack"))

    @r.get("", summary="Silences", dependencies=[read], responses=errors(422))
    async def list_silences(active: bool | None = None) -> SilenceList:
        def q(s: Session) -> SilenceList:
            rows = s.scalars(select(Silence).order_by(Silence.id.desc()))
            items = [SilenceOut.model_validate(x) for x in rows]
            return SilenceList(items=[i for i in items if active is None or i.active == active])

        return await api.tx(q)

    @r.post("", status_code=201, summary="Silence matching notifications for a while",
            responses=errors(400, 422))  # fmt: skip
    async def create_silence(
        body: SilenceIn, principal: Annotated[Principal, ack_scope]
    ) -> SilenceOut:
        now = utcnow()
        starts, ends = body.window(now)

        def q(s: Session) -> SilenceOut:
            silence = Silence(
                service=body.service, asset_id=body.asset_id,
                level=body.level.value if body.level else None, starts_at=starts, ends_at=ends,
                author=principal.sub, comment=body.comment, created_at=now,
            )  # fmt: skip
            s.add(silence)
            s.flush()
            return SilenceOut.model_validate(silence)

        return await api.tx(q)

    @r.delete("/{silence_id}", summary="Expire a silence now", responses=errors(404, 422))
    async def expire_silence(
        silence_id: SilenceId, _p: Annotated[Principal, ack_scope]
    ) -> SilenceOut:
        def q(s: Session) -> SilenceOut:
            silence = s.get(Silence, silence_id)
            if silence is None:
                raise NotFound(f"no silence {silence_id}")
            if silence.expired_at is None:
                silence.expired_at = utcnow()
            return SilenceOut.model_validate(silence)

        return await api.tx(q)

    return r
