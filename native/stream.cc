// Bytes onto a connected stream socket whole, or not at all: for a frame
// that must not be split or interleaved with what the socket's owner writes
// (the first GOAWAY of an HTTP/2 graceful shutdown, src/drain/http2.ts).
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "addon.h"
#include "errors.h"

Napi::Value SendWhole(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = IntArg(info, 0);
  Napi::Buffer<char> data = info[1].As<Napi::Buffer<char>>();
  // Only into an empty send queue (SIOCOUTQ: bytes not yet acknowledged), so
  // that a few bytes cannot be accepted in part.
  int queued = 0;
  Check(env, "ioctl", ioctl(fd, SIOCOUTQ, &queued));
  if (queued != 0) return Napi::Boolean::New(env, false);
  // MSG_DONTWAIT: never blocks the event loop; a call that does not wait is
  // never interrupted (no EINTR). MSG_NOSIGNAL: a closed peer is EPIPE, not SIGPIPE.
  const ssize_t sent = send(fd, data.Data(), data.Length(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
    throw SystemError(env, "send", errno);
  }
  // Part of it went: the stream is broken for its owner, who must close it.
  if (static_cast<size_t>(sent) != data.Length()) throw SystemError(env, "send", EMSGSIZE);
  return Napi::Boolean::New(env, true);
}
