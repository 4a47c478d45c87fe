"""Runtime configuration, read from ``HUB_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the hub. Defaults suit a laptop; production sets the database URL."""

    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description=(
            "postgresql://user:password@host:port/db (a Unix socket via ?host=/path). "
            "Unset: an embedded PostgreSQL is started in data_dir."
        ),
    )
    data_dir: Path = Field(
        default=Path(".hub-data"),
        description="Folder of the embedded PostgreSQL when database_url is unset.",
    )
    database_name: str = Field(
        default="hub", description="Database created and used inside the embedded PostgreSQL."
    )
    pool_size: int = Field(default=10, ge=1, description="Connections kept open per process.")
    pool_max_overflow: int = Field(default=10, ge=0, description="Extra connections under load.")
    statement_timeout_ms: int = Field(
        default=15_000, ge=100, description="PostgreSQL statement_timeout for every connection."
    )
    max_page_size: int = Field(
        default=100, ge=1, description="Largest `first`/`last` a connection field accepts."
    )
    default_page_size: int = Field(
        default=20, ge=1, description="Page size when neither `first` nor `last` is given."
    )
    migrate_on_start: bool = Field(
        default=True, description="`hub serve` applies pending migrations before serving."
    )
    graphiql: bool = Field(default=True, description="Serve the GraphiQL explorer on GET /graphql.")
    default_phone_region: str | None = Field(
        default=None,
        description=(
            "ISO country code for phone numbers written without +country (e.g. GB). "
            "Unset: numbers must be international."
        ),
    )
    compiled_reads: bool = Field(
        default=True,
        description=(
            "Answer covered queries from one compiled SQL statement (hub/compiled/); "
            "everything else goes through the resolvers."
        ),
    )
