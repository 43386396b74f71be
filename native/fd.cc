// Plain fd operations: dup (always CLOEXEC), close, listen again.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addon.h"
#include "errors.h"

namespace baton {

static Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd = fcntl(IntArg(info, 0), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), "fcntl");
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value Close(const Napi::CallbackInfo& info) {
  // On Linux the fd is released even when close() reports EINTR: never retry.
  if (close(IntArg(info, 0)) < 0 && errno != EINTR) ThrowErrno(info.Env(), "close");
  return info.Env().Undefined();
}

static Napi::Value Listen(const Napi::CallbackInfo& info) {
  if (listen(IntArg(info, 0), IntArg(info, 1)) < 0) ThrowErrno(info.Env(), "listen");
  return info.Env().Undefined();
}

void InitFd(Napi::Env env, Napi::Object exports) {
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("listen", Napi::Function::New(env, Listen, "listen"));
}

}  // namespace baton
