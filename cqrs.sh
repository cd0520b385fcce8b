#!/usr/bin/env bash
# One entry point for the README's commands: installs what is missing, builds (Release, into build/), then runs
# the demo or the test suite. Idempotent: a second run installs nothing and rebuilds only what changed.
#
#   ./cqrs.sh demo [demo options...]   run the demo simulation (build/bin/cqrs-demo)
#   ./cqrs.sh test [ctest options...]  run the whole test suite through ctest
#   ./cqrs.sh build                    install and build only
#   ./cqrs.sh sanitize                 run the suite under ASan+UBSan (build-asan/) and TSan (build-tsan/)
#   ./cqrs.sh fuzz [SECONDS]           run every libFuzzer target (fuzz/) for SECONDS each (default 60), with clang-16
#   ./cqrs.sh pg                       start a throwaway PostgreSQL server, print its connection string, and stop and
#                                      remove it on Ctrl-C (the tests start their own)
set -euo pipefail
cd "$(dirname "$0")"

# postgresql: the tests start a throwaway server of their own (tests/postgres_server.sh); libpq-dev: the store.
packages=(cmake make g++ libcaf-dev libboost-json1.81-dev catch2 libcli11-dev libsqlite3-dev libxxhash-dev
  postgresql libpq-dev)

install_missing() {
  local missing=()
  for package in "${packages[@]}" "$@"; do
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
  fuzz)
    # Debian 12's clang-16: clang-14 cannot compile the project's C++23 (std::expected needs conditionally trivial
    # special members, which clang implements from 16 on; fuzz/CMakeLists.txt says more). The sanitizer and
    # libFuzzer runtimes are in libclang-rt-16-dev, which nothing here pulls in without recommends.
    install_missing clang-16 libfuzzer-16-dev libclang-rt-16-dev
    seconds=${1:-60}
    [[ -f build-fuzz/CMakeCache.txt ]] || cmake -S fuzz -B build-fuzz -DCMAKE_CXX_COMPILER=clang++-16
    cmake --build build-fuzz -j "$(nproc)"
    for target in script_line order_event store_file store_verify; do
      # New inputs go to build-fuzz/corpus/TARGET; the kept seeds in fuzz/corpus/TARGET are read, not written.
      # An input that runs for 30 s is a hang (a read going round in circles), reported like a crash.
      mkdir -p "build-fuzz/corpus/$target"
      echo "== $target: $seconds s"
      "build-fuzz/${target}_fuzz" -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
        "build-fuzz/corpus/$target" "fuzz/corpus/$target"
    done
    ;;
  pg)
    install_missing
    state=$(mktemp "${TMPDIR:-/tmp}/cqrs-pg-state.XXXXXX")
    tests/postgres_server.sh start "$state"
    trap 'tests/postgres_server.sh stop "$state"; echo "server stopped and removed"' EXIT
    trap 'exit 0' INT TERM
    echo "PostgreSQL is running; its connection string (for --store postgres:...):"
    echo "  $(head -n 1 "$state")"
    echo "Ctrl-C stops it and removes its folder."
    while true; do sleep 3600; done
    ;;
  *)
    echo "usage: ./cqrs.sh demo|test|build|sanitize|fuzz|pg [options...]" >&2
    exit 2
    ;;
esac
