{
  "targets": [
    {
      "target_name": "baton",
      "sources": [
        "native/addon.cc",
        "native/listener.cc",
        "native/channel.cc",
        "native/datagram.cc",
        "native/poll.cc",
        "native/sockinfo.cc",
        "native/fd.cc",
        "native/filter.cc",
        "native/process.cc",
        "native/stream.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"]
    }
  ]
}
