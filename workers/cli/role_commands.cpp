// ticketflow run <role>: the long-running roles each Kubernetes Deployment runs.
#include <iostream>

#include "command.hpp"
#include "pipeline/pipeline.hpp"
#include "ticketflow/config/config.hpp"

namespace ticketflow::app {
namespace {

int runRoles(const cli::ParsedArgs& args, std::vector<pipeline::RoleSpec> roles, const std::string& process_role) {
  const Config config = loadConfigOption(args);
  for (const auto& r : roles)
    if (r.role == pipeline::Role::kTier && !config.findTier(r.tier))
      throw cli::UsageError("--tier: no tier named '" + r.tier + "' in " + config.source);
  pipeline::PipelineOptions options;
  options.roles = std::move(roles);
  options.process_role = process_role;
  options.http_port = config.observability.http_port == 0 ? -1 : config.observability.http_port;
  if (args.has("http-port")) options.http_port = static_cast<int>(args.getInt("http-port", -1, 65535));
  pipeline::Pipeline pipeline(config, std::move(options));
  auto status = pipeline.runUntilTerminated();
  if (!status) {
    std::cerr << "ticketflow run " << process_role << ": " << status.error().message << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

cli::OptionSpec httpPortOption() {
  return {"http-port", "N", "port of /metrics /healthz /readyz (default: observability.http_port; -1: none)", ""};
}

const char* kDrainText =
    "Stops on SIGTERM or SIGINT: stops fetching, drains in-flight work within\n"
    "stage.drain_deadline_ms, commits and exits 0.";

}  // namespace

std::vector<Command> roleCommands() {
  return {
      {{"run all",
        "run intake, every tier pool and the result writers in one process",
        "",
        0,
        0,
        {configOption(), httpPortOption()},
        std::string("One process with every role, each on its own consumer group: what a laptop or a small\n"
                    "helpdesk runs. ") +
            kDrainText},
       [](const cli::ParsedArgs& args) {
         const Config config = loadConfigOption(args);
         return runRoles(args, pipeline::allRoles(config), "all");
       },
       ""},
      {{"run intake",
        "run the intake role",
        "",
        0,
        0,
        {configOption(), httpPortOption()},
        std::string("Consumes kafka.topics.inbound: validates (invalid: dead letter), classifies, answers from the\n"
                    "semantic cache or routes to <tier_prefix><tier>. ") +
            kDrainText},
       [](const cli::ParsedArgs& args) {
         return runRoles(args, {{pipeline::Role::kIntake, ""}}, "intake");
       },
       ""},
      {{"run tier",
        "run one tier pool",
        "",
        0,
        0,
        {configOption(), {"tier", "NAME", "tier to serve (one of the configuration's tiers)"}, httpPortOption()},
        std::string("Consumes <tier_prefix><NAME>, calls the tier's model chain under the cluster-wide rate limits\n"
                    "and budget caps (retries, breakers, fallbacks, repair, escalation) and produces results,\n"
                    "or tickets for another tier. ") +
            kDrainText},
       [](const cli::ParsedArgs& args) {
         const std::string tier = args.get("tier");
         return runRoles(args, {{pipeline::Role::kTier, tier}}, "tier:" + tier);
       },
       ""},
      {{"run results",
        "run the result writers",
        "",
        0,
        0,
        {configOption(), httpPortOption()},
        std::string("Consumes kafka.topics.results and writes each ticket update to every configured sink\n"
                    "(results.sinks), once per (ticket id, revision). ") +
            kDrainText},
       [](const cli::ParsedArgs& args) {
         return runRoles(args, {{pipeline::Role::kResults, ""}}, "results");
       },
       ""},
      {{"run shadow",
        "run shadow evaluation",
        "",
        0,
        0,
        {configOption(), httpPortOption()},
        std::string("Consumes kafka.topics.shadow (answers sampled by shadow.sample), answers each ticket again\n"
                    "with the reference tier, charged to the budget bucket tier:shadow, and counts agreement per\n"
                    "tier x category in Redis (`ticketflow eval routing`). Writes to no sink. ") +
            kDrainText},
       [](const cli::ParsedArgs& args) {
         return runRoles(args, {{pipeline::Role::kShadow, ""}}, "shadow");
       },
       ""},
      {{"run feedback",
        "run the feedback role",
        "",
        0,
        0,
        {configOption(), httpPortOption()},
        std::string("Consumes kafka.topics.feedback (corrected categories, resolved by the reply, reopened) and\n"
                    "stores training labels in Redis for `train --feedback` and `train escalation --feedback`.\n"
                    "Needs feedback.enabled. ") +
            kDrainText},
       [](const cli::ParsedArgs& args) {
         return runRoles(args, {{pipeline::Role::kFeedback, ""}}, "feedback");
       },
       ""},
  };
}

}  // namespace ticketflow::app
