"""The ``litellm-memory-patch`` command: migrate, downgrade, print the SQL, check the database.

Subcommands live in :data:`SUBCOMMANDS`; adding one is a function that takes the parsed
arguments and returns an exit code, plus one entry there. Every failure a user can cause or
fix (no URL, unreachable server, missing LiteLLM table, missing privilege, busy table) is one
line on stderr that says what to do, and exit status 1; a usage error (an unknown option, a
bad value) is one line too, with exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from typing import Callable

import psycopg
from alembic.util import CommandError
from psycopg import errors
from sqlalchemy.exc import DBAPIError

from . import __version__, demo, doctor, exposure, migrator, verify
from .config import (
    DEFAULT_SCHEMA,
    PATCH_SCHEMA,
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
    "the login role lacks a privilege ({reason}); the README's table \"Who runs what\" names"
    " the role each command needs"
)
TABLE_BUSY = (
    "the memory table is busy: another transaction held a lock on it longer than the lock"
    " timeout; nothing was changed; retry, or raise --lock-timeout"
)
DATABASE_ERROR = "the database refused ({reason})"
CONNECT_CLASSES = ("08", "28", "3D")
NOTHING_TO_DOWNGRADE = "database not migrated (no revision recorded): nothing to downgrade, nothing changed"
CANNOT_DOWNGRADE = (
    "cannot go back to {revision} ({reason}); give a revision below the database's"
    " (see downgrade --help)"
)
BAD_LOCK_TIMEOUT = "must be a number of seconds, at least 0.001 (got {value!r})"
DATABASE_URL_TWICE = "--database-url given twice; give it once"
TAKES_NO_URL = "{command} uses no database of yours and takes no --database-url"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other error, with exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Subcommand:
    help: str
    run: Callable[[argparse.Namespace], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    # Whether it takes --database-url.
    database: bool = True


def _target(args: argparse.Namespace) -> DatabaseTarget:
    return parse_database_url(database_url_from_env(args.database_url))


def _lock_timeout_ms(args: argparse.Namespace) -> int:
    return round(args.lock_timeout * 1000)


def _seconds(text: str) -> float:
    # PostgreSQL reads a lock_timeout of 0 as "wait forever", which would queue the migration's
    # exclusive lock, and every request behind it, for as long as the table stays busy.
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0.001:
        raise argparse.ArgumentTypeError(BAD_LOCK_TIMEOUT.format(value=text))
    return value


def _add_lock_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=migrator.DEFAULT_LOCK_TIMEOUT_MS / 1000,
        metavar="SECONDS",
        help="give up, changing nothing, when the table stays locked this long"
        " (default: %(default)s)",
    )


def _add_migrate_arguments(parser: argparse.ArgumentParser) -> None:
    _add_lock_timeout(parser)
    parser.add_argument(
        "--grant-to",
        action="append",
        default=[],
        metavar="ROLE",
        help="also let this login role switch to the restricted role (repeatable); the"
        " migrating role and the memory table's owner always may",
    )


def _report_revision(target: DatabaseTarget) -> None:
    with psycopg.connect(target.conninfo) as conn:
        revision = migrator.current_revision(conn)
    print(f"{PROG}: database at revision {revision or 'base (not migrated)'}")


def _migrate(args: argparse.Namespace) -> int:
    target = _target(args)
    migrator.upgrade(
        target, lock_timeout_ms=_lock_timeout_ms(args), grant_to=tuple(args.grant_to)
    )
    _report_revision(target)
    return 0


def _add_downgrade_arguments(parser: argparse.ArgumentParser) -> None:
    choices = ["base", *migrator.revisions()[:-1]]
    parser.add_argument(
        "revision",
        nargs="?",
        default="base",
        choices=choices,
        metavar="REVISION",
        help=f"revision to go back to: {', '.join(choices)} (default: base, which also removes"
        f" the schema {PATCH_SCHEMA})",
    )
    _add_lock_timeout(parser)


def _downgrade(args: argparse.Namespace) -> int:
    target = _target(args)
    try:
        done = migrator.downgrade(
            target, revision=args.revision, lock_timeout_ms=_lock_timeout_ms(args)
        )
    except CommandError as exc:
        # Alembic's words for a target at or above the database's revision.
        raise ConfigError(
            CANNOT_DOWNGRADE.format(revision=args.revision, reason=_one_line(exc))
        ) from None
    if not done:
        print(f"{PROG}: {NOTHING_TO_DOWNGRADE}")
        return 0
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


def _add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--proxy-url", default="http://localhost:4000", help="the proxy (default: %(default)s)"
    )
    for number in (1, 2):
        parser.add_argument(
            f"--key-{number}",
            required=True,
            metavar="KEY",
            help=f"a key of team {number} that may call /v1/memory"
            + (" (of another team than --key-1)" if number == 2 else ""),
        )


def _verify(args: argparse.Namespace) -> int:
    steps = verify.run(args.proxy_url, args.key_1, args.key_2)
    print(verify.format_steps(steps))
    return 0 if all(step.ok for step in steps) else 1


def _url(args: argparse.Namespace) -> int:
    # psql refuses Prisma's parameters (?schema=, ?pgbouncer=, ...): the URL as libpq reads it.
    print(_target(args).conninfo)
    return 0


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
        _add_migrate_arguments,
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
    "url": Subcommand(
        "print the database URL without Prisma's parameters, for psql (it names the password)",
        _url,
    ),
    "verify": Subcommand(
        "check that a running proxy refuses cross-team access, with two keys of different teams"
        " (leaves nothing behind)",
        _verify,
        _add_verify_arguments,
        database=False,
    ),
    # The demo brings its own PostgreSQL.
    "demo": Subcommand(
        "replay LiteLLM issue #27722 against the patched proxy, on a private PostgreSQL",
        demo.run,
        demo.add_arguments,
        database=False,
    ),
}


def _add_database_url(parser: argparse.ArgumentParser, dest: str) -> None:
    parser.add_argument(
        "--database-url",
        dest=dest,
        metavar="URL",
        help="PostgreSQL URL, Prisma-style ?schema= allowed"
        " (default: LITELLM_MEMORY_DATABASE_URL, else DATABASE_URL)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Team isolation for LiteLLM's /v1/memory store.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    # --database-url is accepted before or after the subcommand; two destinations, so that
    # giving it in both places is an error rather than the later one silently winning.
    _add_database_url(parser, "database_url")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, subcommand in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=subcommand.help, description=subcommand.help)
        if subcommand.database:
            _add_database_url(sub, "database_url_after_command")
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
    parser = build_parser()
    args = parser.parse_args(argv)
    after = getattr(args, "database_url_after_command", None)
    if args.database_url is not None and after is not None:
        parser.error(DATABASE_URL_TWICE)
    if args.database_url is not None and not SUBCOMMANDS[args.command].database:
        parser.error(TAKES_NO_URL.format(command=args.command))
    args.database_url = args.database_url or after
    try:
        return SUBCOMMANDS[args.command].run(args)
    except (ConfigError, migrator.MigrationRefused, verify.VerifyError) as exc:
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
