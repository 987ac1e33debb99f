#pragma once
// Clock: the only way our code reads time, so tests can inject a manual clock.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace ticketflow {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time (UTC), for timestamps that leave the process.
  virtual std::chrono::system_clock::time_point now() const = 0;
  // Monotonic time, for deadlines, backoff and latency.
  virtual std::chrono::steady_clock::time_point steadyNow() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override { return std::chrono::system_clock::now(); }
  std::chrono::steady_clock::time_point steadyNow() const override { return std::chrono::steady_clock::now(); }
  static const SystemClock& instance();
};

// Manual clock for unit tests: time moves only when the test says so.
class ManualClock final : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override { return wall_; }
  std::chrono::steady_clock::time_point steadyNow() const override { return steady_; }
  void advance(std::chrono::nanoseconds d) {
    wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
    steady_ += d;
  }
  void setWall(std::chrono::system_clock::time_point t) { wall_ = t; }

 private:
  std::chrono::system_clock::time_point wall_{};
  std::chrono::steady_clock::time_point steady_{};
};

// Milliseconds since the Unix epoch: how wall times are stored in Redis and in marks.
inline std::int64_t epochMillis(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// Seconds elapsed since `start` on the monotonic clock: how runs and benchmarks time themselves.
inline double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// RFC 3339 UTC timestamp with milliseconds, e.g. 2026-11-22T20:51:49.123Z.
std::string formatRfc3339(std::chrono::system_clock::time_point t);
// Parses an RFC 3339 time ("2026-11-22T20:51:49.123Z", "...+02:00"); nullopt if it is not one, or
// if its year is outside 1900-2200 (the clock cannot hold years past 2262).
std::optional<std::chrono::system_clock::time_point> parseRfc3339(const std::string& text);

}  // namespace ticketflow
