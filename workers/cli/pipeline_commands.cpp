// submit, triage, demo: the commands that feed tickets to the pipeline and report on them.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <unistd.h>

#include "command.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/embedded.hpp"
#include "ticketflow/domain/ticket_file.hpp"
#include "ticketflow/kafka/client.hpp"
#include "triage/report.hpp"
#include "triage/triage.hpp"

namespace ticketflow::app {
namespace {

ColumnMap columnMapFrom(const cli::ParsedArgs& args) {
  if (auto spec = args.find("column-map")) {
    auto map = ColumnMap::parse(*spec);
    if (!map) throw cli::UsageError("--column-map: " + map.error().message);
    return *map;
  }
  return {};
}

TicketDefaults defaultsFrom(const cli::ParsedArgs& args) {
  TicketDefaults d;
  if (auto tenant = args.find("tenant")) d.tenant = *tenant;
  d.created_at = formatRfc3339(SystemClock::instance().now());
  return d;
}

// A one-line progress bar on stderr: redrawn in place on a terminal, a line every 10% otherwise.
class ProgressBar {
 public:
  explicit ProgressBar(std::string what) : what_(std::move(what)), tty_(isatty(STDERR_FILENO) != 0) {}
  void update(const triage::TriageProgress& p) {
    const double share = p.total ? double(p.done) / double(p.total) : 1.0;
    if (!tty_) {
      const int decile = static_cast<int>(share * 10);
      if (decile <= last_decile_) return;
      last_decile_ = decile;
    }
    const int width = 30;
    const int filled = static_cast<int>(share * width);
    const double rate = p.seconds > 0 ? double(p.done) / p.seconds : 0;
    std::ostringstream line;
    line << what_ << " [" << std::string(static_cast<std::size_t>(filled), '#')
         << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << p.done << "/" << p.total;
    if (p.submitted < p.total) line << " (" << p.submitted << " sent)";
    line << "  " << std::fixed << std::setprecision(1) << rate << "/s";
    if (rate > 0 && p.done < p.total) line << "  ETA " << static_cast<int>(double(p.total - p.done) / rate) << " s";
    std::cerr << (tty_ ? "\r" : "") << line.str() << (tty_ ? "\033[K" : "\n") << std::flush;
  }
  void finish() {
    if (tty_) std::cerr << "\n";
  }

 private:
  std::string what_;
  bool tty_;
  int last_decile_ = -1;
};

int runSubmit(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  const std::string path = args.positionals().at(0);
  const std::string topic = args.find("topic").value_or(config.kafka.topics.inbound);
  auto records = readTicketRecords(path);
  if (!records) throw std::runtime_error(records.error().message);
  const ColumnMap columns = columnMapFrom(args);
  const TicketDefaults defaults = defaultsFrom(args);
  const bool as_is = args.has("as-is");
  std::vector<std::pair<std::string, std::string>> batch;
  std::size_t sent = 0, invalid = 0;
  const auto timeout = std::chrono::seconds(args.getInt("timeout", 1, 86400));
  // librdkafka would retry an unreachable broker for message.timeout.ms (5 minutes by default).
  kafka::Producer producer(config.kafka, "submit", {{"message.timeout.ms", std::to_string(timeout.count() * 1000)}});
  auto flush = [&] {
    if (batch.empty()) return;
    if (auto st = producer.produceBatch(topic, batch, timeout); !st)
      throw std::runtime_error("cannot deliver to " + topic + " on " + config.kafka.bootstrap_servers + " within " +
                               std::to_string(timeout.count()) + " s (" + st.error().message + "); " +
                               std::to_string(sent) +
                               " tickets were sent before. Is the broker reachable? --timeout sets the wait");
    sent += batch.size();
    batch.clear();
  };
  for (const auto& record : *records) {
    if (as_is) {  // the raw line, for testing intake's validation and dead-lettering
      std::string key = record.fields.is_object() && record.fields.contains("id") && record.fields["id"].is_string()
                            ? record.fields["id"].get<std::string>()
                            : "line-" + std::to_string(record.line);
      batch.emplace_back(key, record.raw.empty()
                                  ? record.fields.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                                  : record.raw);
    } else {
      auto ticket = ticketFromRecord(record, columns, defaults);
      if (!ticket) {
        ++invalid;
        std::cerr << path << ": " << ticket.error().message << " (not sent)\n";
        continue;
      }
      batch.emplace_back(ticket->id, toJson(*ticket));
    }
    if (batch.size() >= 1000) flush();
  }
  flush();
  std::cout << "submitted " << sent << " tickets to " << topic << " on " << config.kafka.bootstrap_servers;
  if (invalid) std::cout << "; " << invalid << " invalid rows not sent";
  std::cout << "\n";
  return invalid && !sent ? kExitFailure : kExitOk;
}

std::string writeReport(const std::string& path, const triage::TriageReport& report,
                        const triage::TriageTotals& totals) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write the report " + path);
    out << triage::htmlReport(report, totals);
  }
  std::filesystem::rename(tmp, path);
  return path;
}

int runTriage(const cli::ParsedArgs& args) {
  Config config = loadConfigOption(args);
  triage::TriageOptions options;
  options.path = args.positionals().at(0);
  options.columns = columnMapFrom(args);
  options.defaults = defaultsFrom(args);
  options.dry_run = args.has("dry-run");
  options.embedded = args.has("embedded");
  if (options.dry_run && options.embedded) throw cli::UsageError("--dry-run and --embedded exclude each other");
  if (args.has("limit")) options.limit = static_cast<std::size_t>(args.getInt("limit", 1, 100'000'000));
  options.assumed_output_tokens = args.getInt("output-tokens", 1, 100000);
  options.calibration_path = args.find("calibration").value_or("");
  if (!options.calibration_path.empty() && !options.dry_run) throw cli::UsageError("--calibration goes with --dry-run");
  options.idle_timeout = std::chrono::seconds(args.getInt("idle-timeout", 1, 86400));
  options.submit_rate = args.getDouble("rate");
  if (options.submit_rate < 0) throw cli::UsageError("--rate must be >= 0");
  if (!options.dry_run) options.state_path = args.find("state").value_or(options.path + ".triage-state.jsonl");
  std::ofstream pipeline_log;
  if (options.embedded) {
    options.local.latency_scale = args.getDouble("latency-scale");
    if (auto log = args.find("log")) {
      pipeline_log.open(*log, std::ios::app);
      options.pipeline_log = &pipeline_log;
    }
    options.shadow_labels = args.find("shadow-labels").value_or("");
  } else if (args.has("shadow-labels")) {
    throw cli::UsageError("--shadow-labels goes with --embedded");
  }
  ProgressBar bar(options.dry_run ? "classifying" : "triaging");
  options.progress = [&](const triage::TriageProgress& p) { bar.update(p); };
  const auto report = triage::runTriage(config, options);
  bar.finish();
  const auto totals = triage::totalsOf(report);
  std::cout << triage::textSummary(report, totals);
  if (auto path = args.find("report")) std::cout << "  report: " << writeReport(*path, report, totals) << "\n";
  if (!options.dry_run) std::cout << "  resume file: " << options.state_path << "\n";
  return report.missing == 0 ? kExitOk : kExitFailure;
}

int runDemo(const cli::ParsedArgs& args) {
  Config config = loadConfigOption(args);
  const auto dir = std::filesystem::temp_directory_path() / "ticketflow-demo";
  std::filesystem::create_directories(dir);
  const auto samples = embeddedFile("config/samples/tickets.jsonl");
  if (!samples) throw std::runtime_error("the binary has no config/samples/tickets.jsonl");
  const std::string samples_path = (dir / "sample-tickets.jsonl").string();
  std::ofstream(samples_path, std::ios::trunc) << *samples;
  const std::string log_path = (dir / "pipeline.log").string();
  std::ofstream pipeline_log(log_path, std::ios::trunc);

  triage::TriageOptions options;
  options.path = samples_path;
  options.embedded = true;
  options.limit = static_cast<std::size_t>(args.getInt("tickets", 1, 1'000'000));
  options.submit_rate = args.getDouble("rate");
  options.local.latency_scale = args.getDouble("latency-scale");
  options.pipeline_log = &pipeline_log;
  options.updates_copy = (dir / "updates.jsonl").string();
  options.idle_timeout = std::chrono::seconds(120);
  std::cout << "ticketflow demo: embedded Kafka broker, private redis-server, provider simulator (simulated\n"
               "answers, realistic latency per tier) and the whole pipeline in this process\n"
            << std::flush;
  ProgressBar bar("triaging");
  options.progress = [&](const triage::TriageProgress& p) { bar.update(p); };
  const auto report = triage::runTriage(config, options);
  bar.finish();
  const auto totals = triage::totalsOf(report);
  std::cout << "\n" << triage::textSummary(report, totals);
  if (report.ledger_settled)
    std::cout << "  budget ledger: " << formatUsd(*report.ledger_settled)
              << " settled today (the sum of the updates' costs)\n";
  std::cout << "  updates: produced to " << report.updates_topic << " (embedded broker, gone at exit); a copy is in "
            << options.updates_copy << "\n  pipeline logs (JSON lines): " << log_path << "\n";
  return report.missing == 0 ? kExitOk : kExitFailure;
}

}  // namespace

std::vector<Command> pipelineCommands() {
  const auto cfg = configOption();
  const cli::OptionSpec column_map = {"column-map", "MAP",
                                      "fields from other columns, e.g. body=description,id=number,tenant=customer", ""};
  const cli::OptionSpec tenant = {"tenant", "T", "tenant for rows that name none", "default"};
  return {
      {{"submit",
        "produce tickets from a JSONL or CSV file",
        "FILE",
        1,
        1,
        {cfg,
         {"topic", "T", "target topic (default: kafka.topics.inbound)", ""},
         column_map,
         tenant,
         {"as-is", "", "send JSON lines unchanged, valid or not (intake dead-letters the bad ones)", ""},
         {"timeout", "SECONDS", "give up when the broker has not acknowledged a batch in this long", "30"}},
        "Reads tickets (JSON Lines in schemas/ticket.schema.json form, or CSV / other JSON through\n"
        "--column-map), validates each and produces it keyed by its id. Invalid rows are reported, not sent."},
       runSubmit,
       ""},
      {{"triage",
        "batch-triage a backlog file",
        "FILE",
        1,
        1,
        {cfg,
         {"dry-run", "", "classify and price locally, no model calls", ""},
         {"embedded", "", "run on a local stack (broker, Redis, simulator, pipeline) in this process", ""},
         {"report", "FILE", "write a self-contained HTML report", ""},
         column_map,
         tenant,
         {"state", "FILE", "resume file (default: FILE.triage-state.jsonl)", ""},
         {"limit", "N", "only the first N tickets", ""},
         {"rate", "N", "tickets per second to submit (0: as fast as the broker takes them)", "0"},
         {"output-tokens", "N", "output tokens assumed per answer when pricing estimates", "350"},
         {"calibration", "STATE", "--dry-run: price tickets by what a live run's tickets cost (its resume file)"},
         {"idle-timeout", "S", "stop waiting after S seconds without an outcome", "180"},
         {"latency-scale", "X", "--embedded: multiply simulated model latency", "1"},
         {"log", "FILE", "--embedded: append the pipeline's JSON logs here", ""},
         {"shadow-labels", "FILE", "--embedded: write the run's shadow comparisons as training labels (JSON lines)",
          ""}},
        "Streams the file into the pipeline (the configured cluster, where `run` roles work, or --embedded),\n"
        "shows progress with rate and ETA, and reports counts per category and difficulty, cost per tier\n"
        "against all-frontier, the most repeated issues and the tickets needing humans. Interrupted runs\n"
        "resume from the state file without reprocessing finished tickets. --dry-run only classifies and\n"
        "prices (and replays the semantic cache on a private redis-server)."},
       runTriage,
       ""},
      {{"demo",
        "run the demo pipeline on the embedded defaults",
        "",
        0,
        0,
        {cfg,
         {"tickets", "N", "number of sample tickets to submit (the sample has 328)", "1000"},
         {"rate", "N", "tickets per second (a week of tickets in under a minute)", "15"},
         {"latency-scale", "X", "multiply simulated model latency (0: instant)", "1"}},
        "Starts the embedded broker, a private redis-server, the provider simulator and every role, submits\n"
        "the shipped sample tickets (config/samples/), shows progress and prints what happened: categories,\n"
        "difficulty, tiers, cache hits, spend against all-frontier, latency, degraded and needs-human\n"
        "counts. Cleans up everything it started."},
       runDemo,
       ""},
  };
}

}  // namespace ticketflow::app
