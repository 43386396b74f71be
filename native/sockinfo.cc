// What a socket fd is: the kernel's view (domain, type, local address,
// listening state, reuseport) plus what waits in it: the accept queue of a
// TCP listener, the bytes queued on any socket (a UDP socket's datagrams).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/sock_diag.h>

#include <cstddef>
#include <cstring>
#include <string>

#include "addon.h"
#include "errors.h"

namespace {

int GetOption(Napi::Env env, int fd, int level, int name) {
  int value = 0;
  socklen_t length = sizeof(value);
  Check(env, "getsockopt", getsockopt(fd, level, name, &value, &length));
  return value;
}

const char* TypeName(Napi::Env env, int type) {
  switch (type) {
    case SOCK_STREAM: return "stream";
    case SOCK_DGRAM: return "dgram";
    case SOCK_SEQPACKET: return "seqpacket";
  }
  throw SystemError(env, "getsockopt", ESOCKTNOSUPPORT);
}

// Abstract names start with a NUL byte, shown as '@' like ss(8) does.
std::string UnixPath(const sockaddr_un& addr, socklen_t length) {
  const size_t size = length - offsetof(sockaddr_un, sun_path);
  if (size == 0) return "";
  if (addr.sun_path[0] == '\0') return "@" + std::string(addr.sun_path + 1, size - 1);
  return std::string(addr.sun_path, strnlen(addr.sun_path, size));
}

}  // namespace

Napi::Value SocketInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = IntArg(info, 0);
  const int domain = GetOption(env, fd, SOL_SOCKET, SO_DOMAIN);
  const int type = GetOption(env, fd, SOL_SOCKET, SO_TYPE);
  const bool listening = GetOption(env, fd, SOL_SOCKET, SO_ACCEPTCONN) != 0;

  sockaddr_storage storage;
  socklen_t length = sizeof(storage);
  Check(env, "getsockname", getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length));

  Napi::Object result = Napi::Object::New(env);
  char ip[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (domain == AF_INET) {
    const auto& addr = reinterpret_cast<const sockaddr_in&>(storage);
    inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof(ip));
    port = ntohs(addr.sin_port);
    result.Set("family", 4);
  } else if (domain == AF_INET6) {
    const auto& addr = reinterpret_cast<const sockaddr_in6&>(storage);
    inet_ntop(AF_INET6, &addr.sin6_addr, ip, sizeof(ip));
    port = ntohs(addr.sin6_port);
    result.Set("family", 6);
  } else if (domain == AF_UNIX) {
    result.Set("family", "unix");
  } else {
    throw SystemError(env, "getsockname", EAFNOSUPPORT);
  }
  result.Set("type", TypeName(env, type));
  // Port 0 means never bound: bind() always picks a port.
  result.Set("address", domain == AF_UNIX ? UnixPath(reinterpret_cast<const sockaddr_un&>(storage), length)
                                          : std::string(port == 0 ? "" : ip));
  result.Set("port", port);
  result.Set("listening", listening);
  result.Set("reusePort", GetOption(env, fd, SOL_SOCKET, SO_REUSEPORT) != 0);

  // For a listening TCP socket the kernel reports the accept queue length in
  // tcpi_unacked and the backlog limit in tcpi_sacked.
  tcp_info tcp{};
  if (listening && type == SOCK_STREAM && domain != AF_UNIX) {
    socklen_t size = sizeof(tcp);
    Check(env, "getsockopt", getsockopt(fd, IPPROTO_TCP, TCP_INFO, &tcp, &size));
  }
  result.Set("acceptQueue", tcp.tcpi_unacked);
  result.Set("backlog", tcp.tcpi_sacked);

  // Bytes waiting to be read (a UDP socket's datagrams): SK_MEMINFO_RMEM_ALLOC.
  uint32_t meminfo[SK_MEMINFO_VARS] = {};
  socklen_t size = sizeof(meminfo);
  Check(env, "getsockopt", getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &size));
  result.Set("receiveQueueBytes", meminfo[SK_MEMINFO_RMEM_ALLOC]);
  return result;
}
