// The process-wide pool of worker threads that runs blocking system calls:
// reads and writes on the thread-pool I/O path, and fdatasync and discard on
// both paths.
//
// Threads start on demand, up to kThreadPoolThreads, and then live as long as
// the process (they are detached and sleep when idle), so volumes in any
// number of Node environments share them. A task is a PoolTask embedded in
// the caller's own record: queueing allocates nothing. A worker calls
// task->run(task) once; run must not call N-API (it is not the main thread)
// and hands its result back through its owner (see Volume::PostPoolResult).
#pragma once

namespace cubby {

struct PoolTask {
  void (*run)(PoolTask* task) = nullptr;
  PoolTask* next = nullptr;  // owned by the pool while queued
};

// Queues `task` to run once on a worker thread. Callable from any thread.
// Returns false, with errno set, only when no worker thread exists and none
// could be started; the task is then not queued.
bool RunOnPool(PoolTask* task);

}  // namespace cubby
