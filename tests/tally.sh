# Sourced by tests/run-arm64 and tests/run-packages: each check counts into
# one tally, and the script ends with a plain "N passed, N failed" line.
# TALLY_NAME names the script in its lines.
passed=0
failed=0

# check NAME COMMAND...: runs one check and counts it.
check() {
  local name=$1 started=$SECONDS
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "$TALLY_NAME: ok     $name ($((SECONDS - started)) s)"
  else
    failed=$((failed + 1))
    echo "$TALLY_NAME: FAILED $name ($((SECONDS - started)) s)"
  fi
}

# tally_end: the summary line; the exit status says whether all passed.
tally_end() {
  echo "$TALLY_NAME: finished in $SECONDS s"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
