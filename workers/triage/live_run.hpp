#pragma once
// The live run: tickets produced to the inbound topic, one outcome per ticket collected from the
// updates and dead-letter topics, resumable through the resume file (triage.hpp, state_file.hpp).

#include <vector>

#include "outcome.hpp"
#include "triage.hpp"

namespace ticketflow::triage {

// `tickets` in file order. With options.embedded, starts a local stack and the whole pipeline in
// this process (rewriting `config` to point at them) and stops them before it returns. Tickets
// are submitted from a thread of their own while this one collects outcomes, until every ticket has
// one or none came for options.idle_timeout. Fills the outcomes and what the run measured; the
// caller fills what is the same for both kinds of run (tiers, skipped rows). Throws
// std::runtime_error (the broker unreachable, a resume file of another run, a local stack that
// cannot start).
TriageReport liveRun(Config config, const TriageOptions& options, const std::vector<Ticket>& tickets);

}  // namespace ticketflow::triage
