#pragma once
// The roles as an operator runs them: each `ticketflow run ...` its own process, on the local
// stack, with the shipped configuration file pointed at it. The fault tests kill and restart
// them. Header only (one user per test file).

#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "fixtures/pipeline_run.hpp"
#include "ticketflow/core/process.hpp"

namespace ticketflow::testing {

inline std::string replacedIn(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "the shipped configuration lacks: " << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

class RoleProcesses {
 public:
  // `yaml`: the configuration file's text (configFileFor, then the test's own changes). A
  // killed member's partitions move on after 6 s instead of librdkafka's 45 s, the embedded
  // broker answers empty fetches at once, and logs are at info.
  RoleProcesses(const std::string& dir, std::string yaml) : dir_(dir) {
    yaml = replacedIn(
        yaml, "properties: {}",
        "properties: {session.timeout.ms: \"6000\", heartbeat.interval.ms: \"500\", fetch.wait.max.ms: \"10\"}");
    yaml = replacedIn(yaml, "log_level: debug", "log_level: info");
    writeFile(configPath(), yaml);
    const auto check = runCommand(binaryPath() + " config check " + configPath() + " 2>&1");
    EXPECT_EQ(check.exit_code, 0) << check.output;
  }
  ~RoleProcesses() { stopAll(); }

  std::string configPath() const { return dir_ + "/ticketflow.yaml"; }
  // Starts `run ARGS...` (e.g. {"intake"} or {"tier", "--tier", "fast"}); returns its index.
  std::size_t add(std::vector<std::string> args) {
    roles_.push_back(std::move(args));
    processes_.emplace_back();
    start(roles_.size() - 1);
    return roles_.size() - 1;
  }
  std::size_t size() const { return roles_.size(); }
  const std::vector<std::string>& role(std::size_t i) const { return roles_[i]; }
  bool isTier(std::size_t i) const { return roles_[i].front() == "tier"; }
  std::string name(std::size_t i) const { return roles_[i].back(); }
  void kill(std::size_t i) { processes_[i]->stop(SIGKILL); }
  void start(std::size_t i) {
    std::vector<std::string> argv = {binaryPath(), "run"};
    argv.insert(argv.end(), roles_[i].begin(), roles_[i].end());
    for (const std::string& a : std::vector<std::string>{"--config", configPath(), "--http-port", "-1"})
      argv.push_back(a);
    processes_[i] = std::make_unique<ChildProcess>(
        argv, dir_ + "/role-" + std::to_string(i) + "-" + std::to_string(++started_) + ".log");
  }
  // Lines containing `text` in every log the roles have written so far.
  int linesInLogs(const std::string& text) const {
    int lines = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      if (entry.path().extension() != ".log") continue;
      std::ifstream in(entry.path());
      for (std::string line; std::getline(in, line);) lines += line.find(text) != std::string::npos;
    }
    return lines;
  }
  void stopAll() {
    for (auto& p : processes_)
      if (p) p->stop(SIGTERM);
  }

 private:
  std::string dir_;
  std::vector<std::vector<std::string>> roles_;
  std::vector<std::unique_ptr<ChildProcess>> processes_;
  int started_ = 0;
};

}  // namespace ticketflow::testing
