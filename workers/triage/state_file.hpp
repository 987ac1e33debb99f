#pragma once
// The resume file of a live run (`triage --state FILE`): JSON Lines, a header
// {"run": id, "source": file}, then {"submitted": [keys]} and {"outcome": {...}} lines, appended
// and flushed as work completes, so an interrupted run keeps everything it recorded. A second run
// with the same file reports what finished and submits only the rest. Its field names are a file
// format: old resume files must still load, and projection.cpp reads the outcome lines too.

#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "outcome.hpp"

namespace ticketflow::triage {

class StateFile {
 public:
  // Loads `path` when it exists and opens it for appending; an empty path keeps nothing (a fresh
  // run id, no file). Throws std::runtime_error when the file is a run over another source or
  // cannot be written.
  StateFile(const std::string& path, const std::string& source);

  bool resumed() const { return resumed_; }
  const std::string& runId() const { return run_id_; }
  // What the file held when it was opened (read them before the record* calls start).
  const std::set<std::string>& submitted() const { return submitted_; }
  const std::map<std::string, TicketOutcome>& outcomes() const { return outcomes_; }

  // Keys are ticketKey()s. Thread-safe: the submitter thread records submissions while the
  // collecting thread records outcomes.
  void recordSubmitted(const std::vector<std::string>& keys);
  void recordOutcome(const TicketOutcome& o);

 private:
  void append(const nlohmann::json& j);
  std::string path_;
  std::string run_id_;
  bool resumed_ = false;
  std::set<std::string> submitted_;
  std::map<std::string, TicketOutcome> outcomes_;
  std::ofstream out_;
  std::mutex mutex_;
};

}  // namespace ticketflow::triage
