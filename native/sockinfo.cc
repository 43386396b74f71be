// What a socket is: family, type, address, listening, SO_REUSEPORT, and for
// a TCP listener its accept queue (TCP_INFO: tcpi_unacked is the current
// queue length, tcpi_sacked the backlog).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>

#include "addon.h"
#include "errors.h"

namespace baton {

static int IntOption(Napi::Env env, int fd, int level, int name) {
  int value = 0;
  socklen_t length = sizeof value;
  if (getsockopt(fd, level, name, &value, &length) < 0) ThrowErrno(env, "getsockopt");
  return value;
}

static Napi::Value SocketInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = IntArg(info, 0);
  const int domain = IntOption(env, fd, SOL_SOCKET, SO_DOMAIN);
  const int type = IntOption(env, fd, SOL_SOCKET, SO_TYPE);
  const bool listening = IntOption(env, fd, SOL_SOCKET, SO_ACCEPTCONN) != 0;

  Napi::Object result = Napi::Object::New(env);
  result.Set("family", domain == AF_INET    ? Napi::Value(Napi::Number::New(env, 4))
                       : domain == AF_INET6 ? Napi::Value(Napi::Number::New(env, 6))
                                            : Napi::Value(Napi::String::New(env, "unix")));
  result.Set("type", type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ? "dgram" : "seqpacket");
  result.Set("listening", listening);
  result.Set("reusePort", domain != AF_UNIX && IntOption(env, fd, SOL_SOCKET, SO_REUSEPORT) != 0);

  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) < 0) ThrowErrno(env, "getsockname");
  char text[INET6_ADDRSTRLEN] = "";
  int port = 0;
  std::string name;
  if (domain == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&address);
    name = inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    port = ntohs(in->sin_port);
  } else if (domain == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
    name = inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    port = ntohs(in6->sin6_port);
  } else if (domain == AF_UNIX && length > offsetof(sockaddr_un, sun_path)) {
    auto* un = reinterpret_cast<sockaddr_un*>(&address);
    size_t pathLength = length - offsetof(sockaddr_un, sun_path);
    if (un->sun_path[0] == '\0') {
      name = "@" + std::string(un->sun_path + 1, pathLength - 1);
    } else {
      name = std::string(un->sun_path, strnlen(un->sun_path, pathLength));
    }
  }
  result.Set("address", name);
  result.Set("port", port);

  uint32_t queue = 0, backlog = 0;
  if (listening && type == SOCK_STREAM && (domain == AF_INET || domain == AF_INET6)) {
    tcp_info tcp{};
    socklen_t tcpLength = sizeof tcp;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &tcp, &tcpLength) < 0) ThrowErrno(env, "getsockopt");
    queue = tcp.tcpi_unacked;
    backlog = tcp.tcpi_sacked;
  }
  result.Set("acceptQueue", queue);
  result.Set("backlog", backlog);
  return result;
}

void InitSockInfo(Napi::Env env, Napi::Object exports) {
  exports.Set("socketInfo", Napi::Function::New(env, SocketInfo, "socketInfo"));
}

}  // namespace baton
