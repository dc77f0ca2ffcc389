// Zero-copy sending of stored file bytes to a socket, for `serve` (src/server/send-file.ts):
// sendfile(2) from a pack file to a socket, and a writability wait on the event loop.
//
// Why: serving a 128 MiB NAR through Node, allocating a buffer per chunk, pread into it and writev
// from it cost most of the thread's time besides verification; sendfile sends from the page cache.
//
// JavaScript API:
//   pollWritable(fd) -> poller        watches a dup(2) of the socket: libuv already has the socket
//                                     in its epoll set, which refuses a second registration of the
//                                     same descriptor; the dup is ours, so it cannot be closed and
//                                     renumbered under us by the stream that owns the socket.
//   waitWritable(poller, cb)          cb(status, events) once the socket is writable or hung up.
//   closePoller(poller)               stops watching and closes the dup (idempotent).
//   sendFile(poller | outFd, inFd, offset, length) -> bytes sent (> 0), or -errno (-EAGAIN: nothing
//                                     could be sent now), 0 at the end of the input file. On a
//                                     poller it never blocks (the socket is non-blocking); on a
//                                     plain descriptor it blocks as that descriptor does.
//   pollOut(fd) -> revents or -errno  blocks until fd is writable (a non-blocking pipe in a CLI run).

#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include "napi-check.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/sendfile.h>
#include <unistd.h>

namespace {

struct Poller {
  uv_poll_t handle;
  napi_env env;
  int fd;  // our dup of the socket
  bool closed = false;    // uv_close called
  bool uvClosed = false;  // its callback ran: libuv is done with the handle
  bool jsGone = false;    // the external was collected

  napi_ref callback = nullptr;
  napi_async_context context = nullptr;
};

// Freed once both libuv and JavaScript are done with it.
void OnClosed(uv_handle_t* h) {
  auto* p = static_cast<Poller*>(h->data);
  close(p->fd);
  p->fd = -1;
  p->uvClosed = true;
  if (p->jsGone) delete p;
}

void CloseHandle(Poller* p) {
  if (p->closed) return;
  p->closed = true;
  uv_poll_stop(&p->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), OnClosed);
}

// Drop a pending wait's callback and async context (the wait will never call back).
void ForgetCallback(napi_env env, Poller* p) {
  if (p->callback != nullptr) napi_delete_reference(env, p->callback);
  if (p->context != nullptr) napi_async_destroy(env, p->context);
  p->callback = nullptr;
  p->context = nullptr;
}

void Finalize(napi_env env, void* data, void*) {
  auto* p = static_cast<Poller*>(data);
  ForgetCallback(env, p);
  p->jsGone = true;
  if (!p->closed) CloseHandle(p);
  else if (p->uvClosed) delete p;
}

// The poller object is an external whose finalizer closes the handle when JavaScript forgot to.
Poller* PollerOf(napi_env env, napi_value v) {
  void* data = nullptr;
  if (napi_get_value_external(env, v, &data) != napi_ok) return nullptr;
  return static_cast<Poller*>(data);
}

napi_value PollWritable(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) {
    napi_throw_error(env, "ERR_NATIVE", "pollWritable: dup failed");
    return nullptr;
  }
  uv_loop_t* loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  auto* p = new Poller();
  p->env = env;
  p->fd = dup;
  if (uv_poll_init(loop, &p->handle, dup) != 0) {
    close(dup);
    delete p;
    napi_throw_error(env, "ERR_NATIVE", "pollWritable: uv_poll_init failed");
    return nullptr;
  }
  p->handle.data = p;
  // Not keeping the loop alive by itself: a pending wait belongs to a response that does.
  uv_unref(reinterpret_cast<uv_handle_t*>(&p->handle));
  napi_value out;
  CHECK(napi_create_external(env, p, Finalize, nullptr, &out));
  return out;
}

void OnPoll(uv_poll_t* h, int status, int events) {
  auto* p = static_cast<Poller*>(h->data);
  uv_poll_stop(h);
  uv_unref(reinterpret_cast<uv_handle_t*>(h));
  napi_env env = p->env;
  napi_ref ref = p->callback;
  napi_async_context ctx = p->context;
  p->callback = nullptr;
  p->context = nullptr;
  if (ref == nullptr) return;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value fn, recv, argv[2];
  napi_get_reference_value(env, ref, &fn);
  napi_get_global(env, &recv);  // napi_make_callback needs an object as the receiver
  napi_create_int32(env, status, &argv[0]);
  napi_create_int32(env, events, &argv[1]);
  napi_delete_reference(env, ref);
  napi_value result;
  napi_make_callback(env, ctx, recv, fn, 2, argv, &result);
  napi_async_destroy(env, ctx);
  napi_close_handle_scope(env, scope);
}

napi_value WaitWritable(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Poller* p = PollerOf(env, argv[0]);
  if (p == nullptr || p->closed || p->callback != nullptr) {
    napi_throw_error(env, "ERR_NATIVE", "waitWritable: bad, closed or busy poller");
    return nullptr;
  }
  napi_value name;
  CHECK(napi_create_string_utf8(env, "fetchCacheWaitWritable", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, nullptr, name, &p->context));
  CHECK(napi_create_reference(env, argv[1], 1, &p->callback));
  int r = uv_poll_start(&p->handle, UV_WRITABLE | UV_DISCONNECT, OnPoll);
  if (r != 0) {
    ForgetCallback(env, p);
    napi_throw_error(env, "ERR_NATIVE", "waitWritable: uv_poll_start failed");
    return nullptr;
  }
  uv_ref(reinterpret_cast<uv_handle_t*>(&p->handle));
  return nullptr;
}

napi_value ClosePoller(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Poller* p = PollerOf(env, argv[0]);
  if (p == nullptr || p->closed) return nullptr;
  ForgetCallback(env, p);
  CloseHandle(p);
  return nullptr;
}

napi_value SendFile(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  // The output: a poller's dup of a socket, or a plain descriptor (a file, pipe or device).
  int out = -1;
  napi_valuetype type;
  CHECK(napi_typeof(env, argv[0], &type));
  if (type == napi_number) {
    int32_t fd;
    CHECK(napi_get_value_int32(env, argv[0], &fd));
    out = fd;
  } else {
    Poller* p = PollerOf(env, argv[0]);
    if (p != nullptr && !p->closed) out = p->fd;
  }
  int32_t in;
  double offset, length;
  CHECK(napi_get_value_int32(env, argv[1], &in));
  CHECK(napi_get_value_double(env, argv[2], &offset));
  CHECK(napi_get_value_double(env, argv[3], &length));
  double result;
  if (out < 0) {
    result = -EBADF;
  } else {
    off_t off = static_cast<off_t>(offset);
    size_t left = static_cast<size_t>(length);
    size_t sent = 0;
    int err = 0;
    while (left > 0) {
      ssize_t n = sendfile(out, in, &off, left);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        left -= static_cast<size_t>(n);
        continue;
      }
      if (n == 0) break;  // end of the input file: a truncated pack
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    result = sent > 0 ? static_cast<double>(sent) : (err != 0 ? -static_cast<double>(err) : 0);
  }
  napi_value value;
  CHECK(napi_create_double(env, result, &value));
  return value;
}

// Blocks until `fd` can be written (or has failed): for a non-blocking pipe in a command-line run.
napi_value PollOut(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  struct pollfd pfd = {fd, POLLOUT, 0};
  int r;
  do {
    r = poll(&pfd, 1, -1);
  } while (r < 0 && errno == EINTR);
  napi_value out;
  CHECK(napi_create_int32(env, r < 0 ? -errno : pfd.revents, &out));
  return out;
}

}  // namespace

void RegisterSendFile(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"pollWritable", nullptr, PollWritable, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"waitWritable", nullptr, WaitWritable, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"closePoller", nullptr, ClosePoller, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sendFile", nullptr, SendFile, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"pollOut", nullptr, PollOut, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
