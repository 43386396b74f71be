// TCP listeners and UDP sockets for one worker: SO_REUSEPORT (and
// SO_REUSEADDR) so every worker and generation can join the same group.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "addon.h"
#include "errors.h"

namespace baton {

// Creates, configures and binds; closes the socket before throwing.
static int BoundSocket(const Napi::CallbackInfo& info, int type) {
  Napi::Env env = info.Env();
  const int family = IntArg(info, 0) == 6 ? AF_INET6 : AF_INET;
  const std::string host = StringArg(info, 1);
  const int port = IntArg(info, 2);
  const int v6only = BoolArg(info, 3) ? 1 : 0;

  sockaddr_storage address{};
  socklen_t length;
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&address);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &in->sin_addr) != 1) throw SystemError(env, EINVAL, "inet_pton");
    length = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1) throw SystemError(env, EINVAL, "inet_pton");
    length = sizeof(sockaddr_in6);
  }

  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket");
  const int on = 1;
  const char* failed = nullptr;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0) {
    failed = "setsockopt";
  } else if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) {
    failed = "setsockopt";
  } else if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) < 0) {
    failed = "bind";
  }
  if (failed) {
    int err = errno;
    close(fd);
    throw SystemError(env, err, failed);
  }
  return fd;
}

static Napi::Value TcpListen(const Napi::CallbackInfo& info) {
  int fd = BoundSocket(info, SOCK_STREAM);
  if (listen(fd, IntArg(info, 4)) < 0) {
    int err = errno;
    close(fd);
    throw SystemError(info.Env(), err, "listen");
  }
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value UdpBind(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), BoundSocket(info, SOCK_DGRAM));
}

void InitListener(Napi::Env env, Napi::Object exports) {
  exports.Set("tcpListen", Napi::Function::New(env, TcpListen, "tcpListen"));
  exports.Set("udpBind", Napi::Function::New(env, UdpBind, "udpBind"));
}

}  // namespace baton
