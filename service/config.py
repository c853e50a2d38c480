"""Every setting of the service, read from the environment and `.env`, and nowhere else."""

import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.webhooks.addresses import DEFAULT_PORTS, MAX_PORT, check_url
from service.webhooks.signing import secret_bytes

MIN_SECRET_KEY_BYTES = 32
ANY_ORIGIN = "*"
ORIGIN_PATTERN = re.compile(r"(?P<scheme>https?)://(?P<host>[a-z0-9.-]+|\[[0-9a-f:.]+\])(:(?P<port>[1-9][0-9]{0,4}))?")
"""An origin as browsers send it in `Origin`: scheme, host and port, lower case, no path."""
UPLOAD_FRAMING_BYTES = 64 * 1024
"""Room in an upload's body, beyond MAX_UPLOAD_MB (file and form fields), for multipart boundaries and part headers."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", env_ignore_empty=True, extra="ignore")

    # Store
    mongodb_url: str | None = None
    mongodb_db: str = "video_analyzer"
    mongodb_max_pool_size: int = Field(default=100, ge=1)
    mongodb_min_pool_size: int = Field(default=0, ge=0)
    mongodb_connect_timeout_ms: int = Field(default=10_000, ge=1)
    mongodb_server_selection_timeout_ms: int = Field(default=10_000, ge=1)
    mongodb_socket_timeout_ms: int = Field(default=30_000, ge=1)
    embedded_ttl_pass_seconds: float = Field(default=60.0, gt=0)

    # Files
    data_dir: Path = Path("data")
    upload_dir: Path | None = None
    storage: Literal["local", "gridfs"] = "local"
    max_upload_mb: int = Field(default=2048, ge=1)
    max_form_fields: int = Field(default=16, ge=1)
    max_form_field_kb: int = Field(default=4, ge=1)
    """4 KiB: a `prompt` of its most, 800 characters, in a script of 4 bytes a character."""

    # Request bodies other than uploads: JSON, the login form
    max_json_body_kb: int = Field(default=64, ge=1)
    body_idle_timeout_seconds: float = Field(default=30.0, gt=0)

    # Transcription
    whisper_model: str = "bundled:tiny.en"
    whisper_device: Literal["auto", "cpu", "cuda"] = "auto"
    whisper_compute_type: str = "default"
    whisper_beam_size: int = Field(default=5, ge=1)
    whisper_vad_filter: bool = False
    whisper_word_timestamps: bool = False
    whisper_hallucination_silence_seconds: float = Field(default=2.0, ge=0)
    whisper_batch_size: int = Field(default=8, ge=0)
    whisper_batch_min_seconds: float = Field(default=60.0, ge=0)
    whisper_cpu_threads: int = Field(default=0, ge=0)
    whisper_parallel_parts: int = Field(default=0, ge=0)
    whisper_language_detection_segments: int = Field(default=3, ge=1)
    whisper_language_detection_threshold: float = Field(default=0.5, ge=0, le=1)
    whisper_low_confidence_logprob: float = -1.0
    whisper_low_confidence_no_speech: float = Field(default=0.6, ge=0, le=1)
    openai_api_keep_uploads: bool = True
    openai_api_wait_seconds: float = Field(default=3600.0, gt=0)
    workers: int = Field(default=1, ge=0)
    job_lease_seconds: float = Field(default=60.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    job_retry_base_seconds: float = Field(default=5.0, ge=0)
    worker_poll_seconds: float = Field(default=1.0, gt=0)

    # Language models
    llm_provider: Literal["auto", "openai", "local"] = "auto"
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = Field(default=120.0, gt=0)
    llm_idle_timeout_seconds: float = Field(default=30.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0)
    llm_max_output_tokens: int = Field(default=1024, ge=64)
    llm_concurrency: int = Field(default=4, ge=1)
    llm_queue_timeout_seconds: float = Field(default=60.0, gt=0)
    llm_response_format: Literal["auto", "json_schema", "json_object", "none"] = "auto"
    llm_system_role: bool = True
    llm_context_chars: int = Field(default=12_000, ge=1_000)
    chat_history_turns: int = Field(default=3, ge=0)
    chat_excerpts: int = Field(default=6, ge=1)

    # Users
    auth_enabled: bool = False
    secret_key: SecretStr | None = None
    access_token_minutes: int = Field(default=60, ge=1)
    allow_registration: bool = False
    password_min_length: int = Field(default=10, ge=8)
    login_max_failures: int = Field(default=5, ge=1)
    docs_public: bool = False
    media_token_minutes: int = Field(default=60, ge=1)
    metrics_public: bool = False

    # Webhooks
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_retry_hours: float = Field(default=24.0, gt=0)
    webhook_concurrency: int = Field(default=8, ge=1)
    webhook_user_concurrency: int = Field(default=2, ge=1)
    webhook_poll_seconds: float = Field(default=5.0, gt=0)
    webhook_log_days: int = Field(default=30, ge=1)

    # Server
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=MAX_PORT)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    ready_timeout_seconds: float = Field(default=2.0, gt=0)
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    forwarded_allow_ips: str = "127.0.0.1,::1"
    max_connections: int = Field(default=1000, ge=1)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    cors_origins: str = ""

    @model_validator(mode="after")
    def _check_pool(self) -> "Settings":
        if self.mongodb_min_pool_size > self.mongodb_max_pool_size:
            raise ValueError("MONGODB_MIN_POOL_SIZE must not exceed MONGODB_MAX_POOL_SIZE")
        return self

    @model_validator(mode="after")
    def _check_secret_key(self) -> "Settings":
        """With users on, tokens are only as safe as the key that signs them."""
        if self.auth_enabled:
            key = self.secret_key.get_secret_value() if self.secret_key else ""
            if len(key.encode()) < MIN_SECRET_KEY_BYTES:
                raise ValueError(
                    f"AUTH_ENABLED=true needs a SECRET_KEY of at least {MIN_SECRET_KEY_BYTES} bytes "
                    "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
        return self

    @model_validator(mode="after")
    def _check_cors_origins(self) -> "Settings":
        """Browsers send an origin as `scheme://host[:port]`, so anything else would never match."""
        for origin in self.cors_origin_list:
            if origin == ANY_ORIGIN:
                if self.auth_enabled:
                    raise ValueError(
                        "CORS_ORIGINS=* cannot be used with AUTH_ENABLED=true: any web page could then call the "
                        "service with a signed-in user's token; name the origins of your pages instead"
                    )
            else:
                _check_origin(origin)
        return self

    @model_validator(mode="after")
    def _check_webhook_endpoint(self) -> "Settings":
        """The global receiver needs its secret, both in the forms deliveries use."""
        if self.webhook_url is None:
            return self
        try:
            check_url(self.webhook_url)
        except ValueError as error:
            raise ValueError(f"WEBHOOK_URL: {error}") from None
        if self.webhook_secret is None:
            raise ValueError("WEBHOOK_URL needs a WEBHOOK_SECRET (whsec_ and the base64 of 24 to 64 random bytes)")
        try:
            secret_bytes(self.webhook_secret.get_secret_value())
        except ValueError as error:
            raise ValueError(f"WEBHOOK_SECRET: {error}") from None
        return self

    @property
    def cors_origin_list(self) -> list[str]:
        """CORS_ORIGINS split at its commas, lower case as browsers send them; empty when unset (no CORS)."""
        return [origin.strip().lower() for origin in self.cors_origins.split(",") if origin.strip()]

    @cached_property
    def files_dir(self) -> Path:
        """Where uploaded video files are kept: UPLOAD_DIR, or DATA_DIR/uploads."""
        return self.upload_dir or self.data_dir / "uploads"

    @cached_property
    def embedded_dir(self) -> Path:
        return self.data_dir / "db"

    @property
    def uses_embedded_store(self) -> bool:
        return not self.mongodb_url

    @property
    def language_model_provider(self) -> str:
        """`auto` means openai when a key or a server address is given, else the offline local one."""
        if self.llm_provider != "auto":
            return self.llm_provider
        return "openai" if self.openai_api_key or self.openai_base_url else "local"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_upload_body_bytes(self) -> int:
        """The largest body an upload route reads: MAX_UPLOAD_MB and the multipart framing."""
        return self.max_upload_bytes + UPLOAD_FRAMING_BYTES

    @property
    def max_json_body_bytes(self) -> int:
        return self.max_json_body_kb * 1024


def _check_origin(origin: str) -> None:
    """Refuses what no browser would send as `Origin`, which would never match."""
    match = ORIGIN_PATTERN.fullmatch(origin)
    port = None if match is None or match["port"] is None else int(match["port"])
    if match is None or (port is not None and port > MAX_PORT):
        raise ValueError(
            f"CORS_ORIGINS: {origin!r} is not an origin; write scheme://host[:port] with no path, "
            "for example http://localhost:3000"
        )
    if port == DEFAULT_PORTS[match["scheme"]]:
        raise ValueError(
            f"CORS_ORIGINS: {origin!r} names its scheme's default port, which browsers leave out of "
            f"Origin; write {match['scheme']}://{match['host']}"
        )
