// TCP listeners and UDP sockets that join a SO_REUSEPORT group, so an old and
// a new generation can hold the same port at once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "addon.h"
#include "errors.h"

namespace {

union InetAddress {
  sockaddr sa;
  sockaddr_in v4;
  sockaddr_in6 v6;
};

void SetOption(Napi::Env env, int fd, int level, int name, int value) {
  Check(env, "setsockopt", setsockopt(fd, level, name, &value, sizeof(value)));
}

// (family, host, port, v6only) -> a bound socket of `type`.
OwnedFd BoundInetSocket(const Napi::CallbackInfo& info, int type) {
  Napi::Env env = info.Env();
  const int family = IntArg(info, 0);
  const std::string host = StringArg(info, 1);
  const int port = IntArg(info, 2);
  const bool v6only = BoolArg(info, 3);
  if (family != 4 && family != 6) throw Napi::TypeError::New(env, "family must be 4 or 6");

  InetAddress addr;
  std::memset(&addr, 0, sizeof(addr));
  socklen_t length;
  void* ip;
  if (family == 4) {
    addr.v4.sin_family = AF_INET;
    addr.v4.sin_port = htons(port);
    ip = &addr.v4.sin_addr;
    length = sizeof(addr.v4);
  } else {
    addr.v6.sin6_family = AF_INET6;
    addr.v6.sin6_port = htons(port);
    ip = &addr.v6.sin6_addr;
    length = sizeof(addr.v6);
  }
  // Parsed before socket() so there is nothing to close on a bad host.
  if (inet_pton(addr.sa.sa_family, host.c_str(), ip) != 1) {
    throw SystemError(env, "inet_pton", EINVAL);
  }

  OwnedFd fd(Check(env, "socket", socket(addr.sa.sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)));
  SetOption(env, fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
  SetOption(env, fd.get(), SOL_SOCKET, SO_REUSEPORT, 1);
  if (family == 6) SetOption(env, fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, v6only);
  Check(env, "bind", bind(fd.get(), &addr.sa, length));
  return fd;
}

}  // namespace

// Bound, not listening: it joins the SO_REUSEPORT group (and gets connections)
// only once listen() is called, by whoever is ready to accept.
Napi::Value TcpBind(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), BoundInetSocket(info, SOCK_STREAM).release());
}

Napi::Value UdpBind(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), BoundInetSocket(info, SOCK_DGRAM).release());
}

// connect() to its own address: a datagram socket that does this matches no
// peer's datagram any more, so no lookup starts at it, and on kernels with
// the 4-tuple hash it leaves its SO_REUSEPORT group. Closing a socket still
// in the group instead can take a datagram the group never steered to it:
// a lookup that scored it just before it left delivers to it all the same.
Napi::Value ConnectToSelf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = IntArg(info, 0);
  InetAddress addr;
  socklen_t length = sizeof(addr);
  Check(env, "getsockname", getsockname(fd, &addr.sa, &length));
  Check(env, "connect", connect(fd, &addr.sa, length));
  return env.Undefined();
}
