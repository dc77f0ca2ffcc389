// Shared by the addon's N-API entry points (nar-dump.cc, send-file.cc).
#pragma once

#include <node_api.h>

// Inside a napi_callback: throw ERR_NATIVE naming the failed call and return to JavaScript.
#define CHECK(call)                                                    \
  do {                                                                 \
    if ((call) != napi_ok) {                                           \
      napi_throw_error(env, "ERR_NATIVE", "napi call failed: " #call); \
      return nullptr;                                                  \
    }                                                                  \
  } while (0)
