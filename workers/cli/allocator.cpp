// jemalloc's settings, read by jemalloc at start-up (MALLOC_CONF in the environment still wins).
// Freed pages go back to the system within a second instead of ten, so that RSS follows the work
// in flight rather than its peak.
#ifdef TICKETFLOW_JEMALLOC
extern "C" {
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): the name jemalloc looks up
const char* malloc_conf = "dirty_decay_ms:1000,muzzy_decay_ms:0";
}
#endif
