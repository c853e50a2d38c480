from pydantic import BaseModel, Field


class ServiceGreeting(BaseModel):
    """What `GET /` answers a client that does not ask for a page: the SQLite service's answer
    (`message`, `multi_language_support`, `supported_languages`), and where to go next."""

    message: str
    multi_language_support: bool = Field(description="whether the service transcribes more than one language")
    supported_languages: list[str] = Field(description="the codes of the languages the configured model transcribes")
    version: str
    app: str = Field(description="where a browser finds the web app")
    docs: str = Field(description="the interactive API description")
