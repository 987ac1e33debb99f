// jemalloc's settings, read by jemalloc at start-up (MALLOC_CONF in the environment still wins).
// Freed pages go back to the system within a second instead of ten, and each thread's cache is
// kept small: a tier pool has hundreds of call threads, and with jemalloc's default caches they
// held ~100 MiB between them (bench tier: 185 MiB peak RSS with defaults, 121 MiB with these, at
// similar calls/s; bench pipeline: 195 -> 144 MiB).
#ifdef TICKETFLOW_JEMALLOC
extern "C" {
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): the name jemalloc looks up
const char* malloc_conf =
    "dirty_decay_ms:1000,muzzy_decay_ms:0,tcache_max:4096,tcache_nslots_small_max:16,tcache_nslots_large:4";
}
#endif
