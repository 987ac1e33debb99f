// Linked into every executable of a ThreadSanitizer build (-DTICKETFLOW_TSAN=ON), never otherwise.
//
// Why: Debian 12's librdkafka starts its threads and takes its locks through the C11 thread calls
// (thrd_create, mtx_lock, cnd_wait, call_once), and GCC 12's TSan runtime intercepts only their
// pthread counterparts. librdkafka's threads would run unknown to TSan, and the runtime crashes
// the first time one of them reaches instrumented code. Defined in the executable, these win over
// glibc's for librdkafka's calls and forward to the pthread functions TSan does intercept. glibc
// implements each C11 call on the pthread object of the same layout (mtx_t is a pthread_mutex_t,
// cnd_t a pthread_cond_t, once_flag a pthread_once_t), so the casts below are glibc's own.
#include <cerrno>
#include <cstdint>
#include <new>

#include <pthread.h>
#include <threads.h>

namespace {

struct ThreadStart {
  thrd_start_t function;
  void* argument;
};

void* runThread(void* start) {
  const ThreadStart copy = *static_cast<ThreadStart*>(start);
  delete static_cast<ThreadStart*>(start);
  return reinterpret_cast<void*>(static_cast<std::intptr_t>(copy.function(copy.argument)));
}

int c11Result(int pthread_result) {
  switch (pthread_result) {
    case 0:
      return thrd_success;
    case EBUSY:
      return thrd_busy;
    case ETIMEDOUT:
      return thrd_timedout;
    case ENOMEM:
      return thrd_nomem;
    default:
      return thrd_error;
  }
}

pthread_mutex_t* asPthread(mtx_t* mutex) {
  return reinterpret_cast<pthread_mutex_t*>(mutex);
}

pthread_cond_t* asPthread(cnd_t* condition) {
  return reinterpret_cast<pthread_cond_t*>(condition);
}

}  // namespace

extern "C" {

int thrd_create(thrd_t* thread, thrd_start_t function, void* argument) {
  auto* start = new (std::nothrow) ThreadStart{function, argument};
  if (start == nullptr) return thrd_nomem;
  const int result = pthread_create(thread, nullptr, runThread, start);
  if (result != 0) delete start;
  return c11Result(result);
}

int thrd_join(thrd_t thread, int* exit_code) {
  void* returned = nullptr;
  const int result = pthread_join(thread, &returned);
  if (result == 0 && exit_code != nullptr) *exit_code = static_cast<int>(reinterpret_cast<std::intptr_t>(returned));
  return c11Result(result);
}

int thrd_detach(thrd_t thread) {
  return c11Result(pthread_detach(thread));
}

int mtx_init(mtx_t* mutex, int type) {
  pthread_mutexattr_t attributes;
  pthread_mutexattr_init(&attributes);
  if ((type & mtx_recursive) != 0) pthread_mutexattr_settype(&attributes, PTHREAD_MUTEX_RECURSIVE);
  const int result = pthread_mutex_init(asPthread(mutex), &attributes);
  pthread_mutexattr_destroy(&attributes);
  return c11Result(result);
}

int mtx_lock(mtx_t* mutex) {
  return c11Result(pthread_mutex_lock(asPthread(mutex)));
}

int mtx_trylock(mtx_t* mutex) {
  return c11Result(pthread_mutex_trylock(asPthread(mutex)));
}

int mtx_unlock(mtx_t* mutex) {
  return c11Result(pthread_mutex_unlock(asPthread(mutex)));
}

void mtx_destroy(mtx_t* mutex) {
  pthread_mutex_destroy(asPthread(mutex));
}

int cnd_init(cnd_t* condition) {
  return c11Result(pthread_cond_init(asPthread(condition), nullptr));
}

int cnd_signal(cnd_t* condition) {
  return c11Result(pthread_cond_signal(asPthread(condition)));
}

int cnd_broadcast(cnd_t* condition) {
  return c11Result(pthread_cond_broadcast(asPthread(condition)));
}

int cnd_wait(cnd_t* condition, mtx_t* mutex) {
  return c11Result(pthread_cond_wait(asPthread(condition), asPthread(mutex)));
}

int cnd_timedwait(cnd_t* __restrict condition, mtx_t* __restrict mutex, const struct timespec* __restrict until) {
  return c11Result(pthread_cond_timedwait(asPthread(condition), asPthread(mutex), until));
}

void cnd_destroy(cnd_t* condition) {
  pthread_cond_destroy(asPthread(condition));
}

void call_once(once_flag* flag, void (*function)(void)) {
  pthread_once(reinterpret_cast<pthread_once_t*>(flag), function);
}

}  // extern "C"
