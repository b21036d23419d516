// Ring: a small io_uring submission and completion ring over the raw system
// calls (io_uring_setup, io_uring_enter, io_uring_register) and the rings the
// kernel shares through mmap. No liburing: it is not installed everywhere, and
// this is all the shim needs.
//
// Protocol (see io_uring(7)). The submission queue (SQ) is a ring of indexes
// into an array of entries (SQEs); the application writes entries, then
// publishes them by storing the SQ tail with release ordering, and
// io_uring_enter hands them to the kernel, which advances the SQ head. The
// completion queue (CQ) is a ring of completion entries (CQEs); the kernel
// stores the CQ tail, the application reads it with acquire ordering,
// consumes entries and stores the CQ head with release ordering. An eventfd
// registered with the ring is signalled whenever a CQE is posted, which is
// what wakes the Node event loop (see Volume).
//
// Threads: one thread only, the main thread of the volume's environment,
// calls every method. The ring is created with IORING_SETUP_SINGLE_ISSUER
// where the kernel knows it.
//
// Invariant: the owner never has more requests in flight than the SQ has
// entries; the CQ has twice as many, so it cannot overflow.
#pragma once

#include <linux/io_uring.h>

#include <cstdint>

#include "failure.h"

namespace cubby {

class Ring {
 public:
  Ring() = default;
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Creates the ring with `entries` SQ entries (a power of two) for I/O on
  // `fd`, checks that the kernel has IORING_OP_READ and IORING_OP_WRITE, and
  // registers `eventFd` for completion notices.
  bool Setup(uint32_t entries, int fd, int eventFd, Failure* failure);

  // The next free submission entry, cleared, with the fd filled in. Returns
  // nullptr when all entries are taken by submissions not yet handed to the
  // kernel.
  io_uring_sqe* NextSubmission();

  // Entries written since the last successful Submit.
  uint32_t Unsubmitted() const { return sqeTail_ - submitted_; }

  // Hands every written entry to the kernel. On failure the entries are
  // still queued: call Withdraw to take them back.
  bool Submit(Failure* failure);

  // Takes back entries the kernel has not consumed, passing the user_data of
  // each to `visit`.
  template <typename Visit>
  void Withdraw(Visit visit) {
    for (uint32_t index = submitted_; index != sqeTail_; index++) visit(sqes_[index & sqMask_].user_data);
    sqeTail_ = submitted_;
    __atomic_store_n(sqTail_, sqeTail_, __ATOMIC_RELEASE);
  }

  // Passes up to `most` of the completions now available to `visit`, then
  // releases them to the kernel. Returns how many it passed.
  template <typename Visit>
  uint32_t Reap(Visit visit, uint32_t most = UINT32_MAX) {
    uint32_t head = *cqHead_;
    const uint32_t available = __atomic_load_n(cqTail_, __ATOMIC_ACQUIRE) - head;
    const uint32_t count = available < most ? available : most;
    for (const uint32_t end = head + count; head != end; head++) visit(cqes_[head & cqMask_]);
    __atomic_store_n(cqHead_, head, __ATOMIC_RELEASE);
    return count;
  }

  // Whether a completion is waiting to be reaped.
  bool HasCompletions() const { return __atomic_load_n(cqTail_, __ATOMIC_ACQUIRE) != *cqHead_; }

  // Blocks until at least one completion is available. For teardown only:
  // the main thread must not block while the event loop runs.
  bool WaitForCompletion(Failure* failure);

 private:
  int ringFd_ = -1;
  int fd_ = -1;
  void* sqRing_ = nullptr;
  size_t sqRingBytes_ = 0;
  void* cqRing_ = nullptr;  // same mapping as sqRing_ when the kernel maps both at once
  size_t cqRingBytes_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  size_t sqesBytes_ = 0;
  uint32_t* sqTail_ = nullptr;
  uint32_t sqMask_ = 0;
  uint32_t sqEntries_ = 0;
  uint32_t sqeTail_ = 0;    // next entry to write
  uint32_t submitted_ = 0;  // entries the kernel has consumed
  uint32_t* cqHead_ = nullptr;
  uint32_t* cqTail_ = nullptr;
  uint32_t cqMask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
};

}  // namespace cubby
