from pydantic import BaseModel


class Health(BaseModel):
    status: str
    database: str
    version: str


class Readiness(BaseModel):
    status: str
    database: str
