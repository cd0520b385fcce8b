#!/usr/bin/env bash
# One entry point for the README's commands: installs what is missing, builds (Release, into build/), then runs
# the demo or the test suite. Idempotent: a second run installs nothing and rebuilds only what changed.
#
#   ./cqrs.sh demo [demo options...]   run the demo simulation (build/bin/cqrs-demo)
#   ./cqrs.sh test [ctest options...]  run the whole test suite through ctest
#   ./cqrs.sh build                    install and build only
#   ./cqrs.sh sanitize                 run the suite under ASan+UBSan (build-asan/) and TSan (build-tsan/)
set -euo pipefail
cd "$(dirname "$0")"

packages=(cmake make g++ libcaf-dev libboost-json1.81-dev catch2 libcli11-dev libsqlite3-dev)

install_missing() {
  local missing=()
  for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

# build FOLDER [cmake options...]
build() {
  local folder=$1
  shift
  if [[ ! -f $folder/CMakeCache.txt ]]; then
    cmake -S . -B "$folder" -DCMAKE_BUILD_TYPE=Release "$@"
  fi
  cmake --build "$folder" -j "$(nproc)"
}

command=${1:-}
[[ $# -gt 0 ]] && shift
case $command in
  demo)
    install_missing
    build build
    exec build/bin/cqrs-demo "$@"
    ;;
  test)
    install_missing
    build build
    exec ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
    ;;
  build)
    install_missing
    build build
    ;;
  sanitize)
    install_missing
    build build-asan -DCQRS_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
    ctest --test-dir build-asan --output-on-failure -j "$(nproc)" "$@"
    build build-tsan -DCQRS_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
    ctest --test-dir build-tsan --output-on-failure -j "$(nproc)" "$@"
    ;;
  *)
    echo "usage: ./cqrs.sh demo|test|build|sanitize [options...]" >&2
    exit 2
    ;;
esac
