// Volume: the opaque handle behind a NativeVolume (src/device/file.ts). One
// open target (file or block device), its lock, and its I/O path.
//
// I/O is asked for in batches. A batch is a Batch record holding one Request
// per byte range; it is accepted whole by one N-API call and settles its
// promise once, when every request has finished or been skipped after the
// first failure. Requests are issued in order, at most kQueueDepth at a time
// per volume; the rest wait inside their batch (at most kMaxPendingBatches
// batches are accepted at once, so what waits is bounded too). A read batch
// may instead report each request as it finishes (readEach): then no reader
// waits for the slowest read of its batch, and many reads still cost one call
// and one submission.
//
// Two I/O paths, chosen at open:
//  - io_uring: reads and writes go to a Ring. The ring's eventfd is watched
//    by a uv_poll_t on the environment's event loop, so completions are
//    reaped on the main thread, in the loop, with no other thread involved.
//    Short transfers and EINTR/EAGAIN are reissued for the remainder.
//  - thread pool: reads and writes run as blocking pread/pwrite on the
//    process-wide pool (thread_pool.h). A worker posts its finished request
//    to this volume's completion list and wakes the main thread with
//    uv_async_send (a libuv call, not an N-API call).
// fdatasync and discard always run on the pool: they are rare and may block.
//
// Threads: everything here runs on the main thread of the environment that
// opened the volume, except RunOnWorker and PostWorkerResult, which run on
// pool workers and touch only the request and the completion list (under
// completionMutex_). No N-API call is made off the main thread.
//
// Lifetime: while any batch is open the volume holds a strong reference to
// its JavaScript handle, so garbage collection cannot take a busy volume.
// close() refuses new work, waits for open batches to settle, then closes the
// ring and the fd (releasing the lock) and resolves. The object itself is
// freed once its uv handles have closed and the JavaScript handle has been
// finalized. If the handle is collected, or the environment torn down, while
// the volume is open, in-flight I/O is waited for synchronously before the fd
// is closed. The memory a batch reads or writes is pinned (allocation.h)
// until the batch settles or is drained, so no kernel or worker ever touches
// freed memory, in whatever order Node finalizes Buffers.
#pragma once

#include <node_api.h>
#include <uv.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "allocation.h"
#include "failure.h"
#include "file.h"
#include "thread_pool.h"
#include "uring.h"

namespace cubby {

enum class IoPathChoice : uint8_t { kAuto, kIoUring, kThreadPool };

enum class Operation : uint8_t { kRead, kWrite, kSync, kDiscard };

// A caller's buffer, as seen at submission: the span of a Buffer from allocate().
struct BufferView {
  uint8_t* data = nullptr;
  size_t length = 0;
  AllocationHeader* allocation = nullptr;
};

class Volume;
struct Batch;

struct Request : PoolTask {
  Batch* batch = nullptr;
  uint8_t* address = nullptr;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t done = 0;         // bytes transferred so far
  uint32_t retries = 0;      // consecutive EINTR / EAGAIN reissues
  bool failed = false;
  Failure failure;           // set when failed
  Request* nextRetry = nullptr;
  Request* nextReported = nullptr;  // link in Volume::reported*: finished, its callback not yet called
};

struct Batch {
  Volume* volume = nullptr;
  Operation operation = Operation::kRead;
  std::vector<Request> requests;  // size() is the batch's request count
  uint32_t nextToIssue = 0;
  uint32_t finished = 0;          // completed, failed or skipped
  int64_t failedIndex = -1;       // first request that failed
  napi_deferred deferred = nullptr;
  // Set for a batch from readEach: every request is reported on its own
  // through this callback, `callback(index, error | undefined)`, as soon as it
  // finishes; none is skipped because another failed; `deferred` resolves
  // (never rejects) once all have been reported.
  napi_ref onRequest = nullptr;
  std::vector<AllocationHeader*> pinned;  // the memory its requests use, until it settles or is drained
  Batch* nextWaiting = nullptr;   // link in Volume::waiting*
  Batch* nextSettled = nullptr;   // link in Volume::settled*, or the free list
};

class Volume {
 public:
  // Opens the target and its I/O path on the main thread of `env`. `self` is
  // filled by the caller (SetHandle) once the JavaScript handle exists.
  static Volume* Open(napi_env env, const OpenOptions& options, IoPathChoice choice, Failure* failure);

  // Called once by the addon with the JavaScript handle (an External).
  void SetHandle(napi_ref self);
  // The External's finalizer (garbage collection or environment teardown).
  void Finalize();

  const std::string& path() const { return path_; }
  const OpenedTarget& target() const { return target_; }
  uint64_t size() const { return target_.size; }
  bool usesRing() const { return ring_ != nullptr; }
  const std::string& ringUnavailableReason() const { return ringUnavailableReason_; }

  // Accepts a read or write batch described by `descriptors` (see
  // kDescriptorFields) over `buffers`, whose memory it pins until the batch
  // settles. Returns the batch's promise, or false with `failure` when the
  // batch is refused before any I/O. With `onRequest` (reads only) each
  // request is reported through it as it finishes (see Batch::onRequest).
  bool Transfer(Operation operation, const double* descriptors, uint32_t count, const BufferView* buffers,
                uint32_t bufferCount, napi_value onRequest, napi_value* promise, Failure* failure);
  bool Sync(napi_value* promise, Failure* failure);
  bool Discard(uint64_t offset, uint64_t length, napi_value* promise, Failure* failure);
  bool Grow(uint64_t size, Failure* failure);
  bool AllocatedBytes(uint64_t* bytes, Failure* failure);
  // Refuses new work; the promise resolves when the volume's I/O has finished and its fd is closed.
  napi_value Close();

  // Scratch space for the buffer views of one call (main thread; reused).
  std::vector<BufferView>& bufferScratch() { return bufferScratch_; }

 private:
  Volume(napi_env env, std::string path);
  ~Volume();

  bool Usable(bool writing, Failure* failure) const;
  bool Admit(bool writing, Failure* failure) const;
  Batch* NewBatch(Operation operation, uint32_t count);
  napi_value Accept(Batch* batch);
  void Issue();
  Request* NextRequest();
  void IssueToRing(Request* request);
  void IssueToPool(Request* request);
  void SubmitRing();
  void FinishRequest(Request* request);
  void FailRequest(Request* request);
  void OnRingCompletion(const io_uring_cqe& completion);
  void OnWorkerResult(Request* request);
  void SettleBatches();
  void Report(Request* request);
  void ReleaseBatch(Batch* batch);
  Failure DescribeRequestFailure(const Batch& batch, const Request& request) const;
  void Recycle(Batch* batch);
  void BeginWork();
  void EndWork();
  void CompleteClose();
  void ReleaseResources();
  void DrainSynchronously();
  void DeleteWhenUnused();

  static void RunOnWorker(PoolTask* task);
  void PostWorkerResult(Request* request);
  Request* TakeWorkerResults();

  static void OnRingReadable(uv_poll_t* handle, int status, int events);
  static void OnWorkerResultsReady(uv_async_t* handle);
  static void OnHandleClosed(uv_handle_t* handle);
  static void OnEnvironmentTeardown(napi_async_cleanup_hook_handle hook, void* data);

  // Runs `work` inside a handle scope and callback scope, so that promise
  // reactions run when it returns (as after any Node callback).
  template <typename Work>
  void InCallbackScope(Work work);
  bool JavaScriptCanRun() const;

  napi_env env_;
  std::string path_;
  OpenedTarget target_;
  bool readOnly_ = false;
  std::unique_ptr<Ring> ring_;
  int eventFd_ = -1;
  std::string ringUnavailableReason_;

  napi_ref self_ = nullptr;
  napi_async_cleanup_hook_handle teardownHook_ = nullptr;
  uv_poll_t ringPoll_;
  uv_async_t workerResultsReady_;
  int openUvHandles_ = 0;
  bool finalized_ = false;

  // Main-thread state.
  Batch* waitingHead_ = nullptr;  // batches with requests not yet issued, in order
  Batch* waitingTail_ = nullptr;
  Request* retryHead_ = nullptr;  // requests to reissue (short transfer, EINTR, EAGAIN)
  Request* reportedHead_ = nullptr;  // finished requests of readEach batches, in completion order
  Request* reportedTail_ = nullptr;
  Batch* settledHead_ = nullptr;  // batches ready to settle
  Batch* freeBatches_ = nullptr;
  uint32_t freeBatchCount_ = 0;
  uint32_t openBatches_ = 0;      // accepted and not yet settled
  uint32_t inFlight_ = 0;         // requests issued and not yet completed (ring + pool)
  uint32_t ringInFlight_ = 0;
  uint32_t poolInFlight_ = 0;
  bool deferRingSubmit_ = false;  // inside a completion callback: submit once, at its end
  bool draining_ = false;         // teardown: completions are only counted
  bool closing_ = false;
  bool closed_ = false;
  std::vector<napi_deferred> closeWaiters_;
  std::vector<BufferView> bufferScratch_;

  // Shared with pool workers.
  std::mutex completionMutex_;
  std::condition_variable workerResultPosted_;
  Request* workerResults_ = nullptr;  // LIFO, linked through PoolTask::next
};

// The JavaScript Error for `failure` on `path`: message, kind, errno,
// errnoNumber, syscall, path (see failure.h). Main thread.
napi_value MakeJavaScriptError(napi_env env, const Failure& failure, const std::string& path);

// Sets up what the volumes of one environment share (call once per environment, from Init).
bool InitializeEnvironment(napi_env env);

}  // namespace cubby
