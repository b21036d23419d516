// Opening a target and the blocking system calls on it: see file.h.
#include "file.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

#include "constants.h"

namespace cubby {
namespace {

// Alignment used for a direct-I/O file whose file system does not report one
// (statx STATX_DIOALIGN needs Linux 6.1 and file system support): a multiple
// of every logical sector size up to 4 KiB, so it is always accepted.
constexpr uint32_t kFallbackDirectAlignment = 4096;

// How often, and how far apart, an O_EXCL open that finds a block device busy
// with no flock holder listed is retried (at most 20 ms on the main thread).
constexpr int kClaimReleaseRetries = 10;
constexpr useconds_t kClaimReleaseRetryMicroseconds = 2000;

// Alignment used for buffered I/O, which the kernel accepts at any alignment;
// requests keep sector granularity so both modes behave the same.
constexpr uint32_t kBufferedAlignment = 512;

// Closes a descriptor when it goes out of scope, unless released.
class ScopedFd {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ~ScopedFd() { Reset(); }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

int OpenRetrying(const char* path, int flags, mode_t mode = 0) {
  for (;;) {
    const int fd = open(path, flags, mode);
    if (fd >= 0 || errno != EINTR) return fd;
  }
}

// Names the file system types that matter when one refuses O_DIRECT.
std::string FileSystemName(int fd) {
  struct statfs info;
  if (fstatfs(fd, &info) != 0) return "its file system";
  switch (static_cast<uint64_t>(info.f_type)) {
    case 0x01021994: return "tmpfs";
    case 0x858458f6: return "ramfs";
    case 0x794c7630: return "overlayfs";
    case 0x65735546: return "FUSE";
    case 0x6969: return "NFS";
    case 0x01021997: return "9p";
    case 0x2fc12fc1: return "ZFS";
    default: {
      char hex[32];
      std::snprintf(hex, sizeof hex, "0x%lx", static_cast<unsigned long>(info.f_type));
      return Message("its file system (type ", hex, ")");
    }
  }
}

Failure DirectIoRefused(const std::string& path, int fd) {
  Failure failure = Failure::System(EINVAL, "fcntl(O_DIRECT)");
  failure.message = path + ": " + FileSystemName(fd) +
                    " does not support direct I/O (O_DIRECT is refused with EINVAL). CubbyDB bypasses the page cache so "
                    "that a completed write is on the device and fdatasync means what it says. Put the store on a file "
                    "system with direct I/O (ext4, xfs, btrfs) or on a block device, or pass { buffered: true } to "
                    "accept buffered I/O (tests, or measuring the CPU path).";
  return failure;
}

bool ProcessHasExited(unsigned long pid) {
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return true;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%lu/stat", pid);
  FILE* file = std::fopen(path, "r");
  if (file == nullptr) return errno == ENOENT;
  char state = '?';
  const bool parsed = std::fscanf(file, "%*d (%*[^)]) %c", &state) == 1;
  std::fclose(file);
  return parsed && state == 'Z';
}

enum class LockHolders { kNoneListed, kSomeAlive, kAllExited };

// Who /proc/locks says holds a flock on (device, inode). A process killed with
// io_uring I/O in flight keeps its open file, and so its lock (and a block
// device's O_EXCL claim), until the kernel has finished that I/O, typically
// tens of milliseconds later: then the caller may wait instead of reporting
// the store in use.
LockHolders FindLockHolders(dev_t device, ino_t inode) {
  FILE* file = std::fopen("/proc/locks", "r");
  if (file == nullptr) return LockHolders::kSomeAlive;
  bool found = false;
  bool allExited = true;
  char line[256];
  while (std::fgets(line, sizeof line, file) != nullptr) {
    // "1: FLOCK  ADVISORY  WRITE 1234 fe:00:56789 0 EOF"; waiters read "1: -> FLOCK ...".
    char type[16];
    unsigned long pid;
    unsigned int major;
    unsigned int minor;
    unsigned long long lockedInode;
    if (std::sscanf(line, "%*d: %15s %*s %*s %lu %x:%x:%llu", type, &pid, &major, &minor, &lockedInode) != 5) continue;
    if (std::strcmp(type, "FLOCK") != 0 || makedev(major, minor) != device || lockedInode != inode) continue;
    found = true;
    if (pid == 0 || !ProcessHasExited(pid)) allExited = false;
  }
  std::fclose(file);
  if (!found) return LockHolders::kNoneListed;
  return allExited ? LockHolders::kAllExited : LockHolders::kSomeAlive;
}

bool IsPowerOfTwo(uint64_t value) { return value != 0 && (value & (value - 1)) == 0; }

bool MeasureBlockDevice(int fd, OpenedTarget* target, Failure* failure) {
  uint64_t size = 0;
  int logical = 0;
  unsigned int physical = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) != 0) {
    *failure = Failure::System(errno, "ioctl(BLKGETSIZE64)");
    return false;
  }
  if (ioctl(fd, BLKSSZGET, &logical) != 0) {
    *failure = Failure::System(errno, "ioctl(BLKSSZGET)");
    return false;
  }
  if (ioctl(fd, BLKPBSZGET, &physical) != 0) {
    *failure = Failure::System(errno, "ioctl(BLKPBSZGET)");
    return false;
  }
  target->sectorSize = static_cast<uint32_t>(logical);
  target->physicalSectorSize = std::max(physical, static_cast<unsigned int>(logical));
  target->size = size - size % target->sectorSize;
  return true;
}

bool MeasureFile(int fd, OpenedTarget* target, Failure* failure) {
  struct statx info;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_SIZE | STATX_DIOALIGN, &info) != 0) {
    *failure = Failure::System(errno, "statx");
    return false;
  }
  const bool reportsAlignment = (info.stx_mask & STATX_DIOALIGN) != 0 && info.stx_dio_offset_align != 0;
  if (!target->directIo) {
    target->sectorSize = kBufferedAlignment;
  } else if (reportsAlignment) {
    target->sectorSize = std::max(info.stx_dio_offset_align, info.stx_dio_mem_align);
  } else {
    target->sectorSize = kFallbackDirectAlignment;
  }
  target->physicalSectorSize = 0;
  target->size = info.stx_size - info.stx_size % target->sectorSize;
  return true;
}

}  // namespace

bool OpenTarget(const OpenOptions& options, OpenedTarget* target, Failure* failure) {
  const char* path = options.path.c_str();
  const int flags = O_CLOEXEC | (options.readOnly ? O_RDONLY : O_RDWR);

  // Open first without O_DIRECT: the answer to "what is it?" decides how.
  bool created = false;
  ScopedFd fd;
  if (options.create && !options.readOnly) {
    fd.Reset(OpenRetrying(path, flags | O_CREAT | O_EXCL, 0644));
    created = fd.valid();
    if (!fd.valid() && errno == EEXIST) fd.Reset(OpenRetrying(path, flags));
  } else {
    fd.Reset(OpenRetrying(path, flags));
  }
  if (!fd.valid()) {
    *failure = Failure::System(errno, "open");
    if (errno == EISDIR) {
      failure->kind = ErrorKind::kInvalidArgument;
      failure->message = options.path + " is a directory, not an image file or a block device";
    }
    return false;
  }
  struct stat info;
  if (fstat(fd.get(), &info) != 0) {
    *failure = Failure::System(errno, "fstat");
    return false;
  }

  if (S_ISBLK(info.st_mode)) {
    target->kind = TargetKind::kBlockDevice;
    // O_EXCL on a block device claims it: EBUSY while it is mounted or held
    // by another O_EXCL opener, in this process or another.
    int error = 0;
    auto openExclusive = [&] {
      int opened = OpenRetrying(path, flags | O_EXCL | O_DIRECT);
      if (opened < 0 && errno == EINVAL && options.buffered) opened = OpenRetrying(path, flags | O_EXCL);
      error = opened < 0 ? errno : 0;
      return opened;
    };
    ScopedFd exclusive(openExclusive());
    // A previous owner's file releases its flock just before its O_EXCL
    // claim: with no flock listed, the claim may be microseconds from going.
    for (int attempt = 0; error == EBUSY && attempt < kClaimReleaseRetries; attempt++) {
      if (FindLockHolders(info.st_dev, info.st_ino) != LockHolders::kNoneListed) break;
      usleep(kClaimReleaseRetryMicroseconds);
      exclusive.Reset(openExclusive());
    }
    if (!exclusive.valid()) {
      if (error == EBUSY) {
        *failure = Failure::System(EBUSY, "open(O_EXCL)");
        failure->kind = ErrorKind::kLocked;
        failure->message = options.path + " is in use: mounted, or opened exclusively by another program (open with O_EXCL gives EBUSY)";
        // Only a claim whose holders are known to be gone is worth waiting
        // for: a mounted device holds no flock.
        failure->lockHolderExited = FindLockHolders(info.st_dev, info.st_ino) == LockHolders::kAllExited;
      } else if (error == EINVAL) {
        *failure = DirectIoRefused(options.path, fd.get());
      } else {
        *failure = Failure::System(error, "open(O_EXCL)");
      }
      return false;
    }
    struct stat again;
    if (fstat(exclusive.get(), &again) != 0 || !S_ISBLK(again.st_mode) || again.st_rdev != info.st_rdev) {
      *failure = Failure::Of(ErrorKind::kInvalidArgument, options.path + " changed while it was being opened");
      return false;
    }
    // Linux opens a read-only block device for writing and fails each write
    // later; refuse at open instead, as a read-only file system would.
    int readOnlyDevice = 0;
    if (!options.readOnly && ioctl(exclusive.get(), BLKROGET, &readOnlyDevice) == 0 && readOnlyDevice != 0) {
      *failure = Failure::System(EROFS, "ioctl(BLKROGET)");
      failure->kind = ErrorKind::kReadOnly;
      failure->message = options.path + " is a read-only block device; open it with { readOnly: true }";
      return false;
    }
    target->directIo = (fcntl(exclusive.get(), F_GETFL) & O_DIRECT) != 0;
    target->deviceMajor = major(info.st_rdev);
    target->deviceMinor = minor(info.st_rdev);
    fd.Reset(exclusive.Release());
  } else if (S_ISREG(info.st_mode)) {
    target->kind = TargetKind::kFile;
    const int current = fcntl(fd.get(), F_GETFL);
    if (current == -1) {
      *failure = Failure::System(errno, "fcntl(F_GETFL)");
      return false;
    }
    if (fcntl(fd.get(), F_SETFL, current | O_DIRECT) == 0) {
      target->directIo = true;
    } else if (errno == EINVAL && options.buffered) {
      target->directIo = false;
    } else {
      *failure = errno == EINVAL ? DirectIoRefused(options.path, fd.get()) : Failure::System(errno, "fcntl(O_DIRECT)");
      if (created) unlink(path);
      return false;
    }
    target->deviceMajor = major(info.st_dev);
    target->deviceMinor = minor(info.st_dev);
  } else {
    *failure = Failure::Of(ErrorKind::kInvalidArgument, options.path + " is neither a regular file nor a block device");
    return false;
  }

  // The lock belongs to this open file description: a second open of the
  // same file, even in this process, cannot take it while this one is open.
  for (;;) {
    if (flock(fd.get(), LOCK_EX | LOCK_NB) == 0) break;
    if (errno == EINTR) continue;
    *failure = Failure::System(errno, "flock");
    if (errno == EWOULDBLOCK) {
      failure->kind = ErrorKind::kLocked;
      failure->message = options.path + " is locked: another volume, in this process or another, has it open";
      // No holder listed any more means the lock went away after flock failed.
      failure->lockHolderExited = FindLockHolders(info.st_dev, info.st_ino) != LockHolders::kSomeAlive;
    }
    return false;
  }

  const bool measured = target->kind == TargetKind::kBlockDevice ? MeasureBlockDevice(fd.get(), target, failure)
                                                                 : MeasureFile(fd.get(), target, failure);
  if (!measured) return false;
  if (!IsPowerOfTwo(target->sectorSize) || target->sectorSize > kBufferAlignment) {
    *failure = Failure::Of(ErrorKind::kInvalidArgument, Message(options.path, ": sector size ", target->sectorSize, " is not a power of two up to ", kBufferAlignment));
    return false;
  }
  target->fd = fd.Release();
  return true;
}

bool GrowFile(int fd, uint64_t size, Failure* failure) {
  for (;;) {
    if (ftruncate(fd, static_cast<off_t>(size)) == 0) return true;
    if (errno == EINTR) continue;
    *failure = Failure::System(errno, "ftruncate");
    return false;
  }
}

bool AllocatedBytes(int fd, TargetKind kind, uint64_t size, uint64_t* bytes, Failure* failure) {
  if (kind == TargetKind::kBlockDevice) {
    *bytes = size;
    return true;
  }
  struct stat info;
  if (fstat(fd, &info) != 0) {
    *failure = Failure::System(errno, "fstat");
    return false;
  }
  *bytes = static_cast<uint64_t>(info.st_blocks) * 512;
  return true;
}

namespace {

template <typename Transfer>
bool TransferFully(Transfer transfer, const char* syscall, uint64_t length, uint64_t* done, Failure* failure) {
  uint32_t retries = 0;
  *done = 0;
  while (*done < length) {
    const ssize_t result = transfer(*done);
    if (result > 0) {
      *done += static_cast<uint64_t>(result);
      retries = 0;
      continue;
    }
    if (result == 0) {
      *failure = Failure::Of(ErrorKind::kEndOfFile, "");
      failure->syscall = syscall;
      return false;
    }
    if ((errno == EINTR || errno == EAGAIN) && retries++ < kMaxTransientRetries) continue;
    *failure = Failure::System(errno, syscall);
    return false;
  }
  return true;
}

}  // namespace

bool BlockingRead(int fd, uint8_t* address, uint64_t length, uint64_t offset, uint64_t* done, Failure* failure) {
  return TransferFully(
      [&](uint64_t progress) { return pread(fd, address + progress, length - progress, static_cast<off_t>(offset + progress)); },
      "pread", length, done, failure);
}

bool BlockingWrite(int fd, const uint8_t* address, uint64_t length, uint64_t offset, uint64_t* done, Failure* failure) {
  return TransferFully(
      [&](uint64_t progress) { return pwrite(fd, address + progress, length - progress, static_cast<off_t>(offset + progress)); },
      "pwrite", length, done, failure);
}

bool BlockingSync(int fd, Failure* failure) {
  for (;;) {
    if (fdatasync(fd) == 0) return true;
    if (errno == EINTR) continue;
    *failure = Failure::System(errno, "fdatasync");
    return false;
  }
}

bool BlockingDiscard(int fd, TargetKind kind, uint64_t offset, uint64_t length, Failure* failure) {
  for (;;) {
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0) {
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EOPNOTSUPP && kind == TargetKind::kBlockDevice) break;
    *failure = Failure::System(errno, "fallocate(PUNCH_HOLE)");
    return false;
  }
  // The device cannot discard with a promise of zeros: write the zeros.
  uint64_t range[2] = {offset, length};
  for (;;) {
    if (ioctl(fd, BLKZEROOUT, range) == 0) return true;
    if (errno == EINTR) continue;
    *failure = Failure::System(errno, "ioctl(BLKZEROOUT)");
    return false;
  }
}

}  // namespace cubby
