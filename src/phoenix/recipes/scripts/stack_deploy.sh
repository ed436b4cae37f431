#!/bin/sh
# Phoenix: one docker_stacks entry of a VM, brought up with Docker Compose.
#
# The run dir holds the stack's folder (stack/), its environment's variables (phoenix.env)
# and, when its manifest gives Traefik labels, a compose override (phoenix-override.yml).
# They are swapped into /opt/phoenix/stacks/<name>/ (the compose project's folder, so
# relative binds keep working) and `up -d --remove-orphans` runs there: compose itself
# leaves unchanged services alone. Compose, not `docker stack`: no swarm to initialise, and
# the original's compose files use what swarm ignores (container_name, restart).
# The plugin (`docker compose`) when present, else Debian 12's `docker-compose` (apt
# installs whichever the release has). Values arrive as environment variables.
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
name=$PHOENIX_STACK
project=$PHOENIX_STACK_PROJECT
root=${PHOENIX_STACKS_ROOT:-/opt/phoenix/stacks}  # a test runs it elsewhere
target=$root/$name
log() { printf 'stack %s: %s\n' "$name" "$*"; }

command -v docker >/dev/null 2>&1 || {
    echo "stack $name: docker is not installed in this VM (feature docker first)" >&2
    exit 2
}
if docker compose version >/dev/null 2>&1; then
    set -- docker compose
elif command -v docker-compose >/dev/null 2>&1; then
    set -- docker-compose
else
    log "installing Docker Compose"
    apt-get -o Acquire::Retries=3 -o Dpkg::Use-Pty=0 update -q
    for package in docker-compose-v2 docker-compose-plugin docker-compose; do
        if apt-cache show "$package" >/dev/null 2>&1; then
            apt-get -o Acquire::Retries=3 -o Dpkg::Use-Pty=0 install -y -q \
                --no-install-recommends "$package"
            break
        fi
    done
    if docker compose version >/dev/null 2>&1; then
        set -- docker compose
    elif command -v docker-compose >/dev/null 2>&1; then
        set -- docker-compose
    else
        echo "stack $name: no Docker Compose package in this release's repositories" >&2
        exit 2
    fi
fi

mkdir -p "$root"
rm -rf "$target.new" "$target.old"
cp -a stack "$target.new"
cp phoenix.env "$target.new/.phoenix.env"
files="-f docker-compose.yml"
if [ -f phoenix-override.yml ]; then
    cp phoenix-override.yml "$target.new/.phoenix-override.yml"
    files="$files -f .phoenix-override.yml"
fi
if [ -d "$target" ]; then mv "$target" "$target.old"; fi
mv "$target.new" "$target"
rm -rf "$target.old"
cd "$target"
log "up ($*)"
# $files is two fixed words or four: split on purpose.
# shellcheck disable=SC2086
"$@" -p "$project" --env-file .phoenix.env $files up -d --remove-orphans
# shellcheck disable=SC2086
"$@" -p "$project" --env-file .phoenix.env $files ps
log "done"
