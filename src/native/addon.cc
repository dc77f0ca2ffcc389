// The addon's entry point: each source registers its functions on the exports, and
// src/native/index.ts hands them out as one capability per feature. binding.gyp compiles
// send-file.cc (sendfile(2), Linux only) only on Linux and defines FETCH_CACHE_SEND_FILE there;
// elsewhere the addon has no file-sending functions and `serve` streams every NAR.

#define NAPI_VERSION 8
#include <node_api.h>

// nar-dump.cc: the NAR of a local path on a libuv worker thread.
void RegisterNarDump(napi_env env, napi_value exports);
// git-pack.cc: `git index-pack` of a received pack, and inflate (when zlib and OpenSSL headers exist).
void RegisterGitPack(napi_env env, napi_value exports);
#ifdef FETCH_CACHE_SEND_FILE
// send-file.cc: sendfile(2) from pack files to sockets and other descriptors.
void RegisterSendFile(napi_env env, napi_value exports);
#endif

namespace {

napi_value Init(napi_env env, napi_value exports) {
  RegisterNarDump(env, exports);
  RegisterGitPack(env, exports);
#ifdef FETCH_CACHE_SEND_FILE
  RegisterSendFile(env, exports);
#endif
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
