"""The ``litellm-memory-patch`` command: migrate, downgrade, print the SQL, check the database.

Subcommands live in :data:`SUBCOMMANDS`; adding one is a function that takes the parsed
arguments and returns an exit code, plus one entry there. Every failure a user can cause or
fix (no URL, unreachable server, missing LiteLLM table, missing privilege, busy table) is one
line on stderr that says what to do, and a non-zero exit code; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Callable

import psycopg
from psycopg import errors
from sqlalchemy.exc import DBAPIError

from . import demo, doctor, exposure, migrator
from .config import (
    DEFAULT_SCHEMA,
    ConfigError,
    DatabaseTarget,
    check_schema_name,
    database_url_from_env,
    parse_database_url,
)

PROG = "litellm-memory-patch"

CANNOT_CONNECT = (
    "cannot connect to the database ({reason}); check --database-url"
    " (or LITELLM_MEMORY_DATABASE_URL / DATABASE_URL): host, port, user, password, database name"
)
MISSING_PRIVILEGE = (
    "the login role lacks a privilege ({reason}); run it as the owner of LiteLLM's tables"
    " (the role LiteLLM's DATABASE_URL logs in as) or as a superuser"
)
TABLE_BUSY = (
    "the memory table is busy: another transaction held a lock on it longer than the lock"
    " timeout; nothing was changed; retry, or raise --lock-timeout"
)
DATABASE_ERROR = "the database refused ({reason})"
CONNECT_CLASSES = ("08", "28", "3D")


@dataclass(frozen=True)
class Subcommand:
    help: str
    run: Callable[[argparse.Namespace], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None


def _target(args: argparse.Namespace) -> DatabaseTarget:
    return parse_database_url(database_url_from_env(args.database_url))


def _lock_timeout_ms(args: argparse.Namespace) -> int:
    return int(args.lock_timeout * 1000)


def _add_lock_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=migrator.DEFAULT_LOCK_TIMEOUT_MS / 1000,
        metavar="SECONDS",
        help="give up, changing nothing, when the table stays locked this long"
        " (default: %(default)s)",
    )


def _report_revision(target: DatabaseTarget) -> None:
    with psycopg.connect(target.conninfo) as conn:
        revision = migrator.current_revision(conn)
    print(f"{PROG}: database at revision {revision or 'base (not migrated)'}")


def _migrate(args: argparse.Namespace) -> int:
    target = _target(args)
    migrator.upgrade(target, lock_timeout_ms=_lock_timeout_ms(args))
    _report_revision(target)
    return 0


def _add_downgrade_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "revision", nargs="?", default="base", help="revision to go back to (default: base)"
    )
    _add_lock_timeout(parser)


def _downgrade(args: argparse.Namespace) -> int:
    target = _target(args)
    migrator.downgrade(target, revision=args.revision, lock_timeout_ms=_lock_timeout_ms(args))
    _report_revision(target)
    return 0


def _add_sql_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--schema",
        help="LiteLLM's schema (default: the database URL's ?schema= if a URL is given,"
        " else public)",
    )
    _add_lock_timeout(parser)


def _sql(args: argparse.Namespace) -> int:
    schema = None if args.schema is None else check_schema_name(args.schema)
    if schema is None:
        try:
            schema = _target(args).schema
        except ConfigError:
            # No URL at all is fine here: the script is for a DBA to apply elsewhere.
            schema = DEFAULT_SCHEMA
    sys.stdout.write(migrator.upgrade_sql(schema=schema, lock_timeout_ms=_lock_timeout_ms(args)))
    return 0


def _add_doctor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the checks as one JSON object")


def _doctor(args: argparse.Namespace) -> int:
    checks = doctor.run_checks(_target(args))
    ok = doctor.all_ok(checks)
    if args.json:
        print(json.dumps({"ok": ok, "checks": [asdict(check) for check in checks]}, indent=2))
    else:
        print(doctor.format_table(checks))
    return 0 if ok else 1


def _add_exposure_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument(
        "--rows", action="store_true", help="add the memory keys of the reachable rows"
    )


def _exposure(args: argparse.Namespace) -> int:
    report = exposure.build_report(_target(args), rows=args.rows)
    print(report.as_json() if args.json else exposure.format_text(report))
    return 0


SUBCOMMANDS: dict[str, Subcommand] = {
    "migrate": Subcommand(
        "add the row-level security to the memory table (upgrade to head)",
        _migrate,
        _add_lock_timeout,
    ),
    "downgrade": Subcommand(
        "remove it again, back to LiteLLM's stock table", _downgrade, _add_downgrade_arguments
    ),
    "sql": Subcommand(
        "print the upgrade as one SQL script for review; needs no database",
        _sql,
        _add_sql_arguments,
    ),
    "doctor": Subcommand(
        "check that the protection is in place and works (read-only)",
        _doctor,
        _add_doctor_arguments,
    ),
    "exposure": Subcommand(
        "report which memory rows LiteLLM's stock rules let other teams' keys reach (read-only)",
        _exposure,
        _add_exposure_arguments,
    ),
    # The demo brings its own PostgreSQL and ignores --database-url.
    "demo": Subcommand(
        "replay LiteLLM issue #27722 against the patched proxy, on a private PostgreSQL",
        demo.run,
        demo.add_arguments,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    # --database-url is accepted before or after the subcommand; SUPPRESS keeps the subparser
    # from overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        default=argparse.SUPPRESS,
        help="PostgreSQL URL, Prisma-style ?schema= allowed"
        " (default: LITELLM_MEMORY_DATABASE_URL, else DATABASE_URL)",
    )
    parser = argparse.ArgumentParser(
        prog=PROG, parents=[common], description="Team isolation for LiteLLM's /v1/memory store."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, subcommand in SUBCOMMANDS.items():
        sub = commands.add_parser(
            name, parents=[common], help=subcommand.help, description=subcommand.help
        )
        subcommand.add_arguments(sub)
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _explain(exc: psycopg.Error) -> str:
    """The one line to print for a database error, with PostgreSQL's own hint when it gave one."""
    reason = _one_line(exc.diag.message_primary or exc)
    hint = exc.diag.message_hint
    if isinstance(exc, errors.LockNotAvailable):
        return TABLE_BUSY
    # The migrations' own errors (missing table, unsafe role) carry a hint that says what to do.
    if hint and isinstance(exc, (errors.UndefinedTable, errors.InsufficientPrivilege)):
        return _one_line(f"{reason}; {hint}")
    if isinstance(exc, errors.InsufficientPrivilege):
        return MISSING_PRIVILEGE.format(reason=reason)
    # Connection-time failures carry no SQLSTATE, or one of these classes (08 connection,
    # 28 authentication, 3D unknown database).
    if isinstance(exc, psycopg.OperationalError) and (exc.sqlstate or "08")[:2] in CONNECT_CLASSES:
        return CANNOT_CONNECT.format(reason=reason)
    return DATABASE_ERROR.format(reason=reason)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.database_url = getattr(args, "database_url", None)
    try:
        return SUBCOMMANDS[args.command].run(args)
    except ConfigError as exc:
        message = str(exc)
    except DBAPIError as exc:
        # Alembic runs through SQLAlchemy, which wraps psycopg's error; the original says more.
        message = _explain(exc.orig) if isinstance(exc.orig, psycopg.Error) else _one_line(exc.orig)
    except psycopg.Error as exc:
        message = _explain(exc)
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
