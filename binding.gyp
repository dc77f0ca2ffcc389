{
  "targets": [
    {
      "target_name": "fetch_cache_native",
      "sources": ["src/native/nar-dump.cc", "src/native/git-pack.cc", "src/native/send-file.cc"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wno-deprecated-declarations"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS"]
    }
  ]
}
