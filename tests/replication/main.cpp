// doctest entry point for the replication tests (unit and live-server binaries).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
