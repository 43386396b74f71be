// A sockaddr_un for a filesystem path or an abstract name, shared by the
// control channel (SEQPACKET) and datagrams (sd_notify).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

#include "errors.h"

struct UnixAddress {
  sockaddr_un addr;
  socklen_t length;
};

// An abstract name is a leading NUL plus the name, and its length is exact:
// trailing bytes would be part of the name.
inline UnixAddress MakeAddress(Napi::Env env, const char* syscall, const std::string& path, bool abstract) {
  UnixAddress result;
  std::memset(&result.addr, 0, sizeof(result.addr));
  result.addr.sun_family = AF_UNIX;
  const size_t offset = abstract ? 1 : 0;
  // A filesystem path needs room for its terminating NUL.
  if (path.size() + 1 > sizeof(result.addr.sun_path)) throw SystemError(env, syscall, ENAMETOOLONG);
  std::memcpy(result.addr.sun_path + offset, path.data(), path.size());
  result.length = offsetof(sockaddr_un, sun_path) + offset + path.size() + (abstract ? 0 : 1);
  return result;
}
