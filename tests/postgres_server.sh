#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and for manual use: created in a temporary folder, run by an
# unprivileged user (PostgreSQL refuses root; as root the script runs the server as the `postgres` user that
# Debian's package creates), reachable only through a Unix socket in that folder, so it touches nothing else on the
# machine and cannot collide with another server's port.
#
#   postgres_server.sh start STATE    create and start a cluster; write its connection string to the file STATE
#   postgres_server.sh stop STATE     stop the cluster and remove its folder and STATE
#   postgres_server.sh crash STATE    stop it at once, as a power cut would (pg_ctl stop -m immediate)
#   postgres_server.sh resume STATE   start a crashed or stopped cluster again (it recovers from its WAL)
#
# STATE holds two lines: the connection string, then the cluster's folder.
set -euo pipefail

command=${1:?usage: postgres_server.sh start|stop|crash|resume STATE}
state=${2:?usage: postgres_server.sh start|stop|crash|resume STATE}

binaries=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [[ -z $binaries || ! -x $binaries/pg_ctl ]]; then
  echo "postgres_server.sh: no PostgreSQL server found (install Debian's postgresql package)" >&2
  exit 1
fi

# as_server COMMAND...: runs a server command as the cluster's owner.
as_server() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

server_start() {
  local folder=$1
  # -w waits until the server accepts connections; its log stays in the folder for a failing test to show.
  if ! as_server "$binaries/pg_ctl" -D "$folder/data" -l "$folder/server.log" -w -t 60 start >/dev/null; then
    cat "$folder/server.log" >&2
    exit 1
  fi
}

case $command in
  start)
    folder=$(mktemp -d "${TMPDIR:-/tmp}/cqrs-postgres.XXXXXX")
    chmod 755 "$folder"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$folder"
    as_server "$binaries/initdb" -D "$folder/data" -U cqrs --auth=trust --no-sync -E UTF8 >"$folder/initdb.log"
    # No TCP listener: the socket in the folder is the only way in. The port only names the socket file.
    # synchronous_commit stays on (the default): a commit is acknowledged once it is flushed, as in production.
    cat >>"$folder/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$folder'
port = 5432
max_connections = 200
shared_buffers = 128MB
fsync = on
EOF
    server_start "$folder"
    printf 'host=%s port=5432 user=cqrs dbname=postgres\n%s\n' "$folder" "$folder" >"$state"
    ;;
  stop | crash | resume)
    [[ -f $state ]] || { echo "postgres_server.sh: no cluster recorded in $state" >&2; exit 1; }
    folder=$(sed -n 2p "$state")
    case $command in
      stop)
        as_server "$binaries/pg_ctl" -D "$folder/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$folder" "$state"
        ;;
      crash) as_server "$binaries/pg_ctl" -D "$folder/data" -m immediate -w stop >/dev/null ;;
      resume) server_start "$folder" ;;
    esac
    ;;
  *)
    echo "usage: postgres_server.sh start|stop|crash|resume STATE" >&2
    exit 2
    ;;
esac
