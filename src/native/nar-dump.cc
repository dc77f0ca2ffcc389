// The NAR serialisation of a local path (`nix-store --dump`), produced on a
// libuv worker thread into buffers the caller hands in, so the JavaScript
// thread hashes one buffer while this fills the next.
//
// It is the same walk as src/fs/dump.ts, which stays the reference and the
// fallback when this addon is not built: entries sorted bytewise by raw name,
// symlinks never followed (a symlink root is a symlink NAR), regular files
// executable iff the owner-x bit is set, files opened with O_NOFOLLOW and
// stat'ed on the descriptor, one byte more read than the size to notice a
// file that grew, anything else refused. What it saves over the JavaScript
// walk is the cost of a binding call per system call, and it opens children
// relative to their directory's descriptor (openat), so the kernel does not
// resolve every path from the root again.
//
// JavaScript API (src/native/index.ts, used by nar-dump.ts):
//   open(path: string | Buffer, nodeOnly?: boolean) -> handle
//   fill(handle, buffer) -> Promise<number>   bytes written; 0 once the NAR is complete
//   close(handle)                               closes descriptors (never while a fill runs)
// A failure rejects with { kind: 'io' | 'unsupported' | 'changed', errno, syscall, path: Buffer }.

#define NAPI_VERSION 8
#include <node_api.h>

#include "napi-check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

namespace {

// Directories deeper than this are read by path instead of keeping a descriptor open.
constexpr size_t kMaxOpenDirs = 128;

struct Entry {
  std::string name;
  unsigned char type;
};

struct Frame {
  int fd;  // -1 when beyond kMaxOpenDirs: children are opened by path
  std::string path;
  std::vector<Entry> entries;
  size_t next = 0;
};

enum class Failure { None, Io, Unsupported, Changed };

class Dumper {
 public:
  // `nodeOnly`: the NAR of the root node without the leading `nix-archive-1`
  // (a part of a larger NAR, whose caller writes the framing around it).
  Dumper(std::string root, bool nodeOnly) : root_(std::move(root)), nodeOnly_(nodeOnly) {}
  ~Dumper() { CloseAll(); }

  // Writes up to `cap` bytes of the NAR into `out`; returns how many (0 at the end).
  size_t Fill(uint8_t* out, size_t cap) {
    out_ = out;
    cap_ = cap;
    len_ = 0;
    if (pendingOff_ < pending_.size()) {
      size_t n = std::min(cap_, pending_.size() - pendingOff_);
      memcpy(out_, pending_.data() + pendingOff_, n);
      len_ += n;
      pendingOff_ += n;
      if (pendingOff_ < pending_.size()) return len_;
    }
    pending_.clear();
    pendingOff_ = 0;
    while (len_ < cap_ && !done_ && failure_ == Failure::None && pending_.empty()) {
      if (fileFd_ >= 0)
        ReadContents();
      else
        Step();
    }
    return len_;
  }

  void CloseAll() {
    if (fileFd_ >= 0) close(fileFd_);
    fileFd_ = -1;
    for (Frame& f : stack_)
      if (f.fd >= 0) close(f.fd);
    stack_.clear();
  }

  Failure failure() const { return failure_; }
  int err() const { return errno_; }
  const char* syscall() const { return syscall_; }
  const std::string& failedPath() const { return failedPath_; }
  bool busy = false;
  bool closed = false;

 private:
  void Emit(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    if (pending_.empty()) {
      size_t fit = std::min(n, cap_ - len_);
      memcpy(out_ + len_, b, fit);
      len_ += fit;
      b += fit;
      n -= fit;
    }
    if (n > 0) pending_.append(reinterpret_cast<const char*>(b), n);
  }

  void EmitU64(uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = static_cast<uint8_t>(v >> (8 * i));
    Emit(b, 8);
  }

  void EmitPad(uint64_t n) {
    static const uint8_t zeros[8] = {0};
    if (n % 8) Emit(zeros, 8 - n % 8);
  }

  void Str(const char* s, size_t n) {
    EmitU64(n);
    Emit(s, n);
    EmitPad(n);
  }
  void Str(const char* s) { Str(s, strlen(s)); }

  void Fail(Failure f, int e, const char* sys, std::string path) {
    failure_ = f;
    errno_ = e;
    syscall_ = sys;
    failedPath_ = std::move(path);
  }

  // After a node (file, symlink, directory) is complete: close its directory entry.
  void NodeDone() {
    if (!stack_.empty()) Str(")");
  }

  void Step() {
    if (!started_) {
      started_ = true;
      if (!nodeOnly_) Str("nix-archive-1");
      struct stat st;
      if (lstat(root_.c_str(), &st) != 0) return Fail(Failure::Io, errno, "lstat", root_);
      unsigned char type = S_ISLNK(st.st_mode)  ? DT_LNK
                           : S_ISREG(st.st_mode) ? DT_REG
                           : S_ISDIR(st.st_mode) ? DT_DIR
                                                 : DT_FIFO;
      return Visit(AT_FDCWD, root_.c_str(), root_, type);
    }
    if (stack_.empty()) {
      done_ = true;
      return;
    }
    Frame& f = stack_.back();
    if (f.next == f.entries.size()) {
      if (f.fd >= 0) close(f.fd);
      stack_.pop_back();
      Str(")");
      return NodeDone();
    }
    const Entry& e = f.entries[f.next++];
    Str("entry");
    Str("(");
    Str("name");
    Str(e.name.data(), e.name.size());
    Str("node");
    std::string path = f.path + "/" + e.name;
    if (f.fd >= 0)
      Visit(f.fd, e.name.c_str(), path, e.type);
    else
      Visit(AT_FDCWD, path.c_str(), path, e.type);
  }

  void Visit(int dirfd, const char* name, const std::string& path, unsigned char type) {
    if (type == DT_UNKNOWN) {
      // The file system did not say: ask.
      struct stat st;
      if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return Fail(Failure::Io, errno, "lstat", path);
      type = S_ISLNK(st.st_mode) ? DT_LNK : S_ISREG(st.st_mode) ? DT_REG : S_ISDIR(st.st_mode) ? DT_DIR : DT_FIFO;
    }
    switch (type) {
      case DT_REG:
        return VisitFile(dirfd, name, path);
      case DT_LNK:
        return VisitSymlink(dirfd, name, path);
      case DT_DIR:
        return VisitDirectory(dirfd, name, path);
      default:
        return Fail(Failure::Unsupported, 0, "", path);
    }
  }

  void VisitFile(int dirfd, const char* name, const std::string& path) {
    int fd;
    do fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      // ELOOP: the file became a symlink since the directory was read.
      if (errno == ELOOP) return Fail(Failure::Changed, 0, "", path);
      return Fail(Failure::Io, errno, "open", path);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int e = errno;
      close(fd);
      return Fail(Failure::Io, e, "fstat", path);
    }
    if (!S_ISREG(st.st_mode)) {
      close(fd);
      return Fail(Failure::Changed, 0, "", path);
    }
    Str("(");
    Str("type");
    Str("regular");
    if (st.st_mode & S_IXUSR) {
      Str("executable");
      Str("");
    }
    Str("contents");
    EmitU64(static_cast<uint64_t>(st.st_size));
    fileFd_ = fd;
    fileSize_ = static_cast<uint64_t>(st.st_size);
    fileLeft_ = fileSize_;
    filePath_ = path;
    // Contents are read by Fill's loop (ReadContents), once any pending header bytes are out.
    if (fileLeft_ == 0) FinishFile();
  }

  void ReadContents() {
    size_t room = cap_ - len_;
    size_t want = static_cast<size_t>(std::min<uint64_t>(fileLeft_, room));
    ssize_t n;
    do n = read(fileFd_, out_ + len_, want);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      int e = errno;
      close(fileFd_);
      fileFd_ = -1;
      return Fail(Failure::Io, e, "read", filePath_);
    }
    if (n == 0) {
      close(fileFd_);
      fileFd_ = -1;
      return Fail(Failure::Changed, 0, "", filePath_);
    }
    len_ += static_cast<size_t>(n);
    fileLeft_ -= static_cast<uint64_t>(n);
    if (fileLeft_ == 0) FinishFile();
  }

  void FinishFile() {
    // One byte more than the size: a file that grew since its fstat is refused.
    uint8_t extra;
    ssize_t n;
    do n = read(fileFd_, &extra, 1);
    while (n < 0 && errno == EINTR);
    close(fileFd_);
    fileFd_ = -1;
    if (n < 0) return Fail(Failure::Io, errno, "read", filePath_);
    if (n > 0) return Fail(Failure::Changed, 0, "", filePath_);
    EmitPad(fileSize_);
    Str(")");
    NodeDone();
  }

  void VisitSymlink(int dirfd, const char* name, const std::string& path) {
    std::string target(4096, '\0');
    for (;;) {
      ssize_t n = readlinkat(dirfd, name, &target[0], target.size());
      if (n < 0) return Fail(Failure::Io, errno, "readlink", path);
      if (static_cast<size_t>(n) < target.size()) {
        target.resize(static_cast<size_t>(n));
        break;
      }
      target.resize(target.size() * 2);
    }
    Str("(");
    Str("type");
    Str("symlink");
    Str("target");
    Str(target.data(), target.size());
    Str(")");
    NodeDone();
  }

  void VisitDirectory(int dirfd, const char* name, const std::string& path) {
    int fd;
    do fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return Fail(Failure::Io, errno, "scandir", path);
    int readFd = dup(fd);
    DIR* dir = readFd < 0 ? nullptr : fdopendir(readFd);
    if (dir == nullptr) {
      int e = errno;
      if (readFd >= 0) close(readFd);
      close(fd);
      return Fail(Failure::Io, e, "scandir", path);
    }
    Frame frame;
    frame.path = path;
    errno = 0;
    while (struct dirent* d = readdir(dir)) {
      if (d->d_name[0] == '.' && (d->d_name[1] == 0 || (d->d_name[1] == '.' && d->d_name[2] == 0))) continue;
      frame.entries.push_back({d->d_name, d->d_type});
      errno = 0;
    }
    int e = errno;
    closedir(dir);
    if (e != 0) {
      close(fd);
      return Fail(Failure::Io, e, "scandir", path);
    }
    // Bytewise order of the raw names (std::string compares as unsigned bytes).
    std::sort(frame.entries.begin(), frame.entries.end(),
              [](const Entry& a, const Entry& b) { return a.name < b.name; });
    if (stack_.size() >= kMaxOpenDirs) {
      close(fd);
      fd = -1;
    }
    frame.fd = fd;
    Str("(");
    Str("type");
    Str("directory");
    stack_.push_back(std::move(frame));
  }

  std::string root_;
  bool nodeOnly_;
  std::vector<Frame> stack_;
  bool started_ = false;
  bool done_ = false;
  int fileFd_ = -1;
  uint64_t fileSize_ = 0;
  uint64_t fileLeft_ = 0;
  std::string filePath_;
  std::string pending_;
  size_t pendingOff_ = 0;
  uint8_t* out_ = nullptr;
  size_t cap_ = 0;
  size_t len_ = 0;
  Failure failure_ = Failure::None;
  int errno_ = 0;
  const char* syscall_ = "";
  std::string failedPath_;
};


void Finalize(napi_env, void* data, void*) { delete static_cast<Dumper*>(data); }

napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  std::string path;
  bool isBuffer = false;
  CHECK(napi_is_buffer(env, argv[0], &isBuffer));
  if (isBuffer) {
    // Raw bytes: names that are not UTF-8 survive.
    void* data;
    size_t len;
    CHECK(napi_get_buffer_info(env, argv[0], &data, &len));
    path.assign(static_cast<const char*>(data), len);
  } else {
    size_t len;
    CHECK(napi_get_value_string_utf8(env, argv[0], nullptr, 0, &len));
    path.assign(len, '\0');
    CHECK(napi_get_value_string_utf8(env, argv[0], &path[0], len + 1, &len));
  }
  bool nodeOnly = false;
  if (argc > 1) {
    napi_valuetype t;
    CHECK(napi_typeof(env, argv[1], &t));
    if (t == napi_boolean) CHECK(napi_get_value_bool(env, argv[1], &nodeOnly));
  }
  auto* d = new Dumper(std::move(path), nodeOnly);
  napi_value handle;
  if (napi_create_external(env, d, Finalize, nullptr, &handle) != napi_ok) {
    delete d;
    napi_throw_error(env, "ERR_NATIVE", "cannot create handle");
    return nullptr;
  }
  return handle;
}

Dumper* HandleOf(napi_env env, napi_value v) {
  void* data = nullptr;
  if (napi_get_value_external(env, v, &data) != napi_ok) return nullptr;
  return static_cast<Dumper*>(data);
}

struct FillWork {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  napi_ref handleRef = nullptr;
  napi_ref bufferRef = nullptr;
  Dumper* dumper = nullptr;
  uint8_t* out = nullptr;
  size_t cap = 0;
  size_t len = 0;
};

void FillExecute(napi_env, void* data) {
  auto* w = static_cast<FillWork*>(data);
  w->len = w->dumper->Fill(w->out, w->cap);
}

void FillComplete(napi_env env, napi_status status, void* data) {
  auto* w = static_cast<FillWork*>(data);
  Dumper* d = w->dumper;
  d->busy = false;
  if (d->closed) d->CloseAll();
  if (status != napi_ok) {
    napi_value msg, err;
    napi_create_string_utf8(env, "fill cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, nullptr, msg, &err);
    napi_reject_deferred(env, w->deferred, err);
  } else if (d->failure() != Failure::None) {
    napi_value err, kind, eno, sys, path;
    napi_create_object(env, &err);
    const char* k = d->failure() == Failure::Io ? "io" : d->failure() == Failure::Unsupported ? "unsupported" : "changed";
    napi_create_string_utf8(env, k, NAPI_AUTO_LENGTH, &kind);
    napi_create_int32(env, d->err(), &eno);
    napi_create_string_utf8(env, d->syscall(), NAPI_AUTO_LENGTH, &sys);
    void* copy;
    napi_create_buffer_copy(env, d->failedPath().size(), d->failedPath().data(), &copy, &path);
    napi_set_named_property(env, err, "kind", kind);
    napi_set_named_property(env, err, "errno", eno);
    napi_set_named_property(env, err, "syscall", sys);
    napi_set_named_property(env, err, "path", path);
    d->CloseAll();
    napi_reject_deferred(env, w->deferred, err);
  } else {
    napi_value n;
    napi_create_double(env, static_cast<double>(w->len), &n);
    napi_resolve_deferred(env, w->deferred, n);
  }
  napi_delete_reference(env, w->handleRef);
  napi_delete_reference(env, w->bufferRef);
  napi_delete_async_work(env, w->work);
  delete w;
}

napi_value Fill(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Dumper* d = HandleOf(env, argv[0]);
  if (d == nullptr || d->busy || d->closed) {
    napi_throw_error(env, "ERR_NATIVE", "fill: bad, busy or closed handle");
    return nullptr;
  }
  void* out;
  size_t cap;
  CHECK(napi_get_buffer_info(env, argv[1], &out, &cap));
  auto* w = new FillWork();
  w->dumper = d;
  w->out = static_cast<uint8_t*>(out);
  w->cap = cap;
  napi_value promise, name;
  CHECK(napi_create_promise(env, &w->deferred, &promise));
  CHECK(napi_create_reference(env, argv[0], 1, &w->handleRef));
  CHECK(napi_create_reference(env, argv[1], 1, &w->bufferRef));
  CHECK(napi_create_string_utf8(env, "fetchCacheNarFill", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, nullptr, name, FillExecute, FillComplete, w, &w->work));
  d->busy = true;
  CHECK(napi_queue_async_work(env, w->work));
  return promise;
}

napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Dumper* d = HandleOf(env, argv[0]);
  if (d != nullptr) {
    d->closed = true;
    if (!d->busy) d->CloseAll();
  }
  return nullptr;
}

}  // namespace

void RegisterNarDump(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", nullptr, Open, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fill", nullptr, Fill, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, 3, props);
}
