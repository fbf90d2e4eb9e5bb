# Sourced by `make test` and `make demo`. Real Apache Livy 0.9 is in no package registry (Maven Central
# stops at 0.7.1-incubating and never published livy-repl), so the test bed uses Apache's binary release,
# found by test/testbed/build/find-livy.sh: LIVY_DISTRIBUTION, else the project's mirror in shared/livy/
# above the repository (checked against its .sha512; a verified copy is kept in the cache), else that cached
# copy; or a layout already cached by an earlier run. Only where none of these exists does this opt out of
# real Livy (LIVY_TESTBED_SKIP_LIVY=1), loudly; the real-Livy suites then report NOT RUN.
_lo_v=$(sed -n 's/^LIVY_VERSION=//p' test/testbed/build/versions.env)
_lo_cache=${LIVY_TESTBED_CACHE:-$HOME/.cache/livy-operator-testbed}
if [ "${LIVY_TESTBED_SKIP_LIVY:-}" != "1" ] && [ ! -f "$_lo_cache/livy-$_lo_v/.complete" ]; then
  if _lo_dist=$(bash test/testbed/build/find-livy.sh); then
    echo "[setup] real Apache Livy $_lo_v from $_lo_dist" >&2
  else
    export LIVY_TESTBED_SKIP_LIVY=1
    export LIVY_TESTBED_SKIP_REASON="no Apache Livy $_lo_v distribution on this machine (Livy 0.8+ is in no package registry; none in LIVY_DISTRIBUTION, in shared/livy/ above the repository, or in the cache); set LIVY_DISTRIBUTION to apache-livy-${_lo_v}_2.12-bin.zip to run them"
    {
      echo "================================================================================================"
      echo " REAL LIVY: NOT AVAILABLE. The contract tests against real Livy, the end-to-end test on real Spark"
      echo " and the real-Livy benchmarks will NOT RUN (reported as skipped, never as passed)."
      echo " Reason: $LIVY_TESTBED_SKIP_REASON"
      echo "================================================================================================"
    } >&2
  fi
fi
unset _lo_v _lo_cache _lo_dist
