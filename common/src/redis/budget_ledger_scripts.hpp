#pragma once
// The budget ledger's Lua scripts (budget_ledger_scripts.cpp), loaded once per process.
#include "ticketflow/redis/pool.hpp"

namespace ticketflow::redis::ledger_scripts {

const RedisScript& reserveScript();
const RedisScript& settleScript();
const RedisScript& releaseScript();
const RedisScript& purgeScript();
const RedisScript& renewScript();

}  // namespace ticketflow::redis::ledger_scripts
