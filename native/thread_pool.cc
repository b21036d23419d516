// The process-wide worker pool: see thread_pool.h.
//
// Invariants (under Pool::mutex): queued counts the tasks in the FIFO
// head..tail; idle counts threads waiting on `wake`; threads counts threads
// started, and never decreases; when threads is 0 the FIFO is empty. A thread
// is started when a task arrives and no idle thread is left to take it.
#include "thread_pool.h"

#include <pthread.h>

#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "constants.h"

namespace cubby {
namespace {

// Worker threads run short system-call loops: a small stack is plenty.
constexpr size_t kWorkerStackBytes = 256 * 1024;

struct Pool {
  std::mutex mutex;
  std::condition_variable wake;
  PoolTask* head = nullptr;
  PoolTask* tail = nullptr;
  uint32_t queued = 0;
  uint32_t idle = 0;
  uint32_t threads = 0;
};

// Never destroyed: detached workers may still wait on it while the process exits.
Pool& ThePool() {
  static Pool* pool = new Pool;
  return *pool;
}

void* WorkerMain(void*) {
  Pool& pool = ThePool();
  for (;;) {
    PoolTask* task;
    {
      std::unique_lock<std::mutex> lock(pool.mutex);
      pool.idle++;
      pool.wake.wait(lock, [&] { return pool.head != nullptr; });
      pool.idle--;
      task = pool.head;
      pool.head = task->next;
      if (pool.head == nullptr) pool.tail = nullptr;
      pool.queued--;
    }
    task->next = nullptr;
    task->run(task);
  }
  return nullptr;
}

bool StartWorker() {
  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setstacksize(&attributes, kWorkerStackBytes);
  pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  const int error = pthread_create(&thread, &attributes, WorkerMain, nullptr);
  pthread_attr_destroy(&attributes);
  if (error != 0) errno = error;
  return error == 0;
}

}  // namespace

bool RunOnPool(PoolTask* task) {
  Pool& pool = ThePool();
  {
    std::lock_guard<std::mutex> lock(pool.mutex);
    if (pool.queued >= pool.idle && pool.threads < kThreadPoolThreads) {
      // Started under the lock, so that "no thread, empty queue" stays true
      // whenever a start fails: the new thread waits for the lock anyway.
      if (StartWorker()) {
        pool.threads++;
      } else if (pool.threads == 0) {
        return false;
      }
    }
    task->next = nullptr;
    if (pool.tail == nullptr) pool.head = task;
    else pool.tail->next = task;
    pool.tail = task;
    pool.queued++;
  }
  pool.wake.notify_one();
  return true;
}

}  // namespace cubby
