{
  "targets": [
    {
      "target_name": "fetch_cache_native",
      "sources": ["src/native/nar-dump.cc"],
      "cflags_cc": ["-O2", "-std=c++17"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS"]
    }
  ]
}
