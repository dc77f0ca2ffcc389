{
  "targets": [
    {
      "target_name": "fetch_cache_native",
      "sources": ["src/native/addon.cc", "src/native/nar-dump.cc", "src/native/git-pack.cc"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wno-deprecated-declarations"],
      "conditions": [
        ["OS=='linux'", {
          "sources": ["src/native/send-file.cc"],
          "defines": ["FETCH_CACHE_SEND_FILE"]
        }],
        ["OS=='mac'", {
          "xcode_settings": {
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "GCC_OPTIMIZATION_LEVEL": "2",
            "OTHER_CPLUSPLUSFLAGS": ["-Wno-deprecated-declarations"]
          }
        }]
      ]
    }
  ]
}
