#pragma once
// Threads running tasks in submission order: the stage engine's handler threads, and the tier
// pools' bounded pool for blocking model calls. Threads start as the queue needs them, up to the
// bound: a tier sized for 256 slow calls holds 256 threads only while 256 calls are in flight,
// and fast calls stay on a few warm threads (fewer stacks, malloc arenas and wake-ups).

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ticketflow/core/thread_name.hpp"

namespace ticketflow {

class WorkerPool {
 public:
  // `name`: the threads' name (core/thread_name.hpp).
  explicit WorkerPool(int max_threads, std::string name = "tf-worker")
      : max_threads_(static_cast<std::size_t>(max_threads < 1 ? 1 : max_threads)), name_(std::move(name)) {}
  ~WorkerPool() { stop(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void submit(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
      // Every queued task beyond the waiting threads needs a thread of its own, while the bound allows.
      if (tasks_.size() > idle_ + starting_ && threads_.size() < max_threads_ && !stopped_) {
        ++starting_;
        threads_.emplace_back([this] { loop(); });
      }
    }
    ready_.notify_one();
  }
  // Joins the threads; tasks not started are destroyed without running.
  void stop() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
      threads.swap(threads_);
    }
    ready_.notify_all();
    for (auto& t : threads) t.join();
    std::deque<std::function<void()>> never_run;
    {
      std::lock_guard lock(mutex_);  // a late submit may still be pushing
      never_run.swap(tasks_);
    }
  }
  std::size_t threads() const {
    std::lock_guard lock(mutex_);
    return threads_.size();
  }
  // Threads waiting for a task.
  std::size_t idle() const {
    std::lock_guard lock(mutex_);
    return idle_;
  }
  // Tasks submitted and not started yet.
  std::size_t queued() const {
    std::lock_guard lock(mutex_);
    return tasks_.size();
  }

 private:
  // A task that throws must not end the thread (std::terminate): it is reported, and whatever it
  // captured is dropped (an unanswered stage Completion then fails its message with a reason).
  void runGuarded(const std::function<void()>& task) const {
    try {
      task();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: a task threw: %s\n", name_.c_str(), e.what());
    } catch (...) {
      std::fprintf(stderr, "%s: a task threw a non-standard exception\n", name_.c_str());
    }
  }
  void loop() {
    nameThisThread(name_);
    std::unique_lock lock(mutex_);
    --starting_;
    while (true) {
      ++idle_;
      ready_.wait(lock, [this] { return stopped_ || !tasks_.empty(); });
      --idle_;
      if (stopped_) return;
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      runGuarded(task);
      task = nullptr;  // drop captured completions outside the lock
      lock.lock();
    }
  }
  const std::size_t max_threads_;
  const std::string name_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;      // threads waiting for a task
  std::size_t starting_ = 0;  // threads started that have not looked for a task yet
  bool stopped_ = false;
};

}  // namespace ticketflow
