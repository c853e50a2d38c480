"""What the media routes answer besides the media itself."""

from datetime import datetime

from pydantic import BaseModel, Field


class MediaTokenOut(BaseModel):
    token: str = Field(description="pass as `?token=` to this video's /media and /thumbnail")
    expires_at: datetime = Field(description="when the token stops working (MEDIA_TOKEN_MINUTES after it was made)")
