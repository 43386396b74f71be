// One AF_UNIX datagram to a named socket, from a socket that lives only for
// the call: what sd_notify() does, as Node's dgram has no AF_UNIX.
#include <sys/socket.h>

#include "addon.h"
#include "errors.h"
#include "unixaddress.h"

Napi::Value SendDatagram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const UnixAddress address = MakeAddress(env, "sendto", StringArg(info, 0), BoolArg(info, 1));
  Napi::Buffer<char> data = info[2].As<Napi::Buffer<char>>();
  OwnedFd fd(Check(env, "socket", socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)));
  // MSG_DONTWAIT: a receiver that stopped reading (a stalled service manager)
  // fills its queue, and must never block the caller. A call that does not
  // wait is never interrupted, so there is no EINTR to retry.
  const ssize_t sent = sendto(fd.get(), data.Data(), data.Length(), MSG_DONTWAIT | MSG_NOSIGNAL,
                              reinterpret_cast<const sockaddr*>(&address.addr), address.length);
  if (sent < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
    throw SystemError(env, "sendto", errno);
  }
  return Napi::Boolean::New(env, true);
}
