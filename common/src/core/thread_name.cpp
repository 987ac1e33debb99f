#include "ticketflow/core/thread_name.hpp"

#include <string>

#include <pthread.h>

namespace ticketflow {

void nameThisThread(std::string_view name) {
  const std::string cut(name.substr(0, 15));
  (void)pthread_setname_np(pthread_self(), cut.c_str());  // cosmetic: a failure changes nothing
}

}  // namespace ticketflow
