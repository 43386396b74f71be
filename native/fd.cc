// Plain fd operations the caller needs on sockets it got from the addon.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addon.h"
#include "errors.h"

Napi::Value Listen(const Napi::CallbackInfo& info) {
  Check(info.Env(), "listen", listen(IntArg(info, 0), IntArg(info, 1)));
  return info.Env().Undefined();
}

// shutdown(SHUT_RDWR) on a TCP listener closes the kernel socket at once,
// whoever else holds an fd to it: it leaves its SO_REUSEPORT group and
// resets whatever is in its accept queue.
Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  Check(info.Env(), "shutdown", shutdown(IntArg(info, 0), SHUT_RDWR));
  return info.Env().Undefined();
}

Napi::Value Dup(const Napi::CallbackInfo& info) {
  // F_DUPFD_CLOEXEC: a dup(2) would drop CLOEXEC and leak into children.
  return Napi::Number::New(info.Env(), Check(info.Env(), "dup", fcntl(IntArg(info, 0), F_DUPFD_CLOEXEC, 0)));
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  // On Linux the fd is released even when close() fails with EINTR, so a
  // retry could close an fd another thread just got; EINTR counts as done.
  if (close(IntArg(info, 0)) < 0 && errno != EINTR) throw SystemError(info.Env(), "close", errno);
  return info.Env().Undefined();
}
