#!/usr/bin/env bash
# Style check: every C++ source under gateway/, policy/ and tests/ is formatted as
# .clang-format says (Debian's clang-format-14; other versions format differently, so the
# check names the exact binary). Prints the first differences and fails if any file differs.
# To fix: clang-format-14 -i <file> (or the whole list below).
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"
mapfile -t files < <(find gateway policy tests -name node_modules -prune -o \
    \( -name '*.cpp' -o -name '*.h' \) -print | sort)
echo "check_format: ${#files[@]} files"
clang-format-14 --dry-run -Werror "${files[@]}"
