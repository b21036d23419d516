{
  "targets": [
    {
      "target_name": "cubbydb",
      "sources": [
        "native/addon.cc",
        "native/allocation.cc",
        "native/crc32c.cc",
        "native/failure.cc",
        "native/file.cc",
        "native/lz4.cc",
        "native/thread_pool.cc",
        "native/uring.cc",
        "native/volume.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags": ["-Wall", "-Wextra", "-Werror=return-type"],
      "cflags_cc": ["-std=c++20", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]
    }
  ]
}
