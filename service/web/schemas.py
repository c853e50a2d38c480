from pydantic import BaseModel, Field


class ServiceGreeting(BaseModel):
    """What `GET /` answers a client that does not ask for a page (curl, scripts, the old clients)."""

    message: str
    version: str
    app: str = Field(description="where a browser finds the web app")
    docs: str = Field(description="the interactive API description")
